"""Op kinds of the circle-state fold: body schemas, authority rules and effects.

`HANDLERS` maps every kind this build understands to its handler (see
`sync.kinds.common` for the handler contract). docs/OPS.md is the normative description.
"""

from __future__ import annotations

from sync.kinds import aid, circle, decisions, events, fund, keys, membership, support
from sync.kinds.common import Handler

HANDLERS: dict[str, Handler] = {
    **circle.HANDLERS,
    **membership.HANDLERS,
    **support.HANDLERS,
    **aid.HANDLERS,
    **decisions.HANDLERS,
    **fund.HANDLERS,
    **events.HANDLERS,
    **keys.HANDLERS,
}
