"""Hostile bodies: whatever a member signs, the fold rejects it with a reason or applies it; it never crashes."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kith.sync.kinds import HANDLERS
from kith.sync.state import fold_circle_state

# The exact keys of every kind's body, so generated bodies get past the key check and
# reach the type, length and authority checks behind it.
KEYS = {
    "circle.create": ["name", "description", "charter", "salt", "card", "epoch"],
    "charter.update": ["proposal"],
    "profile.set": ["display_name", "pronouns", "skills"],
    "member.add": ["member", "vouch", "card", "invite", "request"],
    "member.remove": ["member", "reason"],
    "role.grant": ["member", "role"],
    "role.revoke": ["member", "role"],
    "role.handover": ["member"],
    "msg.post": ["content", "reply_to", "urgent"],
    "msg.edit": ["target", "content"],
    "msg.delete": ["target"],
    "msg.react": ["target", "emoji", "on"],
    "msg.hide": ["target", "reason"],
    "checkin": ["status", "content"],
    "aid.pledge": ["category", "content", "amount", "unit", "expires"],
    "aid.request": ["category", "content", "amount", "unit", "expires"],
    "aid.match": ["pledge", "request"],
    "aid.fulfil": ["request"],
    "aid.withdraw": ["item"],
    "proposal.create": ["kind", "title", "text", "details"],
    "proposal.vote": ["proposal", "choice", "reason"],
    "proposal.withdraw": ["proposal"],
    "proposal.close": ["proposal"],
    "fund.contribute": ["amount", "currency", "note"],
    "fund.receipt": ["contribution"],
    "fund.disburse": ["proposal", "note"],
    "alloc.ask": ["period", "category", "amount", "pseudonym", "commit", "private"],
    "alloc.close": ["period"],
    "alloc.reveal": ["ask", "secret"],
    "alloc.draw": ["period"],
    "alloc.pay": ["ask", "note"],
    "fund.stop": ["contribution", "last"],
    "event.create": ["starts", "content"],
    "event.rsvp": ["event", "answer"],
    "key.rotate": ["epoch", "previous", "sealed"],
    "key.share": ["epoch", "sealed"],
    "key.ack": ["epochs"],
    "member.compromised": ["note"],
    "invite.create": ["invite", "secret", "uses", "expires"],
    "invite.revoke": ["invite"],
    "relay.add": ["address"],
    "relay.remove": ["address"],
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.text(max_size=8)
    | st.sampled_from(["approve", "spend", "charter", "remove", "general", "EUR", "organizer", "money", "yes", "ok"])
    | st.binary(min_size=32, max_size=32)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)


def test_every_kind_has_a_schema_here() -> None:
    assert set(KEYS) == set(HANDLERS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(KEYS)), data=st.data())
def test_hostile_bodies_are_rejected_or_applied_never_crash(circle: Any, kind: str, data: Any) -> None:
    keys = KEYS[kind]
    exact = data.draw(st.booleans())
    if exact:
        body = {key: data.draw(values) for key in keys}
    else:
        body = data.draw(st.dictionaries(st.sampled_from([*keys, "extra"]), values, max_size=len(keys) + 1))
    signed = circle.sign(data.draw(st.sampled_from(["alice", "bob", "mallory"])), kind, body)
    result = circle.replica.ingest(signed)
    assert result.applied == (signed,)
    reason = circle.state.is_rejected(signed.id)
    assert reason is None or (type(reason) is str and reason)
    if not exact and set(body) != set(keys):
        assert reason is not None
    # the incremental state stays exactly the fresh fold of the same ops
    assert circle.state.encode() == fold_circle_state(circle.genesis.op.circle, circle.replica.ops()).encode()
