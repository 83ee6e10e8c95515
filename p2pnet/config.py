"""Node settings: where to listen, whom to dial, how often to reconcile.

Defaults suit a member's laptop. Both kinds of node listen on a stable port (a member's
node on `DEFAULT_NODE_PORT`, on this machine only unless told otherwise; a relay on
`DEFAULT_RELAY_PORT`, on every interface), so an address given out once (in an invite, a
circle's relay list) stays good across restarts;
what they give out is never the unspecified address (`p2pnet.addresses`). A relay behind a
public IP or DNS name says so with ``announce``. Settings come from ``<home>/config.json``
(optional) and command-line flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kith.identity.errors import UsageError
from kith.p2pnet.addresses import check_announce

DEFAULT_RELAY_PORT = 4747
DEFAULT_NODE_PORT = 4748
DEFAULT_NODE_LISTEN = f"/ip4/127.0.0.1/tcp/{DEFAULT_NODE_PORT}"
"""Private by default: a member's node accepts connections from this machine only. It
connects out to its circles' relays and to peers it is told to connect to, so no member
learns another's IP address; `--listen /ip4/0.0.0.0/tcp/4748` opens direct links by choice.
Relays listen on every interface (`NodeConfig.for_relay`)."""


@dataclass
class NodeConfig:
    listen: list[str] = field(default_factory=lambda: [DEFAULT_NODE_LISTEN])
    announce: list[str] = field(default_factory=list)
    """Addresses to give out instead of the listening ones (``/ip4|ip6|dns4|dns6/HOST/tcp/PORT``)."""
    bootstrap: list[str] = field(default_factory=list)
    mdns: bool = False
    sync_interval_s: float = 30.0
    redial_interval_s: float = 15.0
    snapshot_interval_s: float = 30.0
    relay_peer_rate: float = 200.0
    """Gossip messages per second one peer may send a relay (bursts up to 4x)."""
    private_delay_s: float = 600.0
    """An organizer posts the circle's placeholder for a private request after a random
    delay of up to this many seconds, so its timing does not point at the requester."""
    fsync: bool = True
    """Whether each commit to the stores waits for the disk (SQLite ``synchronous=FULL``).
    Off only for throwaway homes (`kith demo`'s world, tests): commits stay atomic and
    survive the process being killed, but not the machine losing power. Not settable from
    a home's config file: a real home is always durable."""

    @classmethod
    def for_relay(cls) -> NodeConfig:
        return cls(listen=[f"/ip4/0.0.0.0/tcp/{DEFAULT_RELAY_PORT}"])

    @classmethod
    def load(cls, path: Path, *, relay: bool = False) -> NodeConfig:
        config = cls.for_relay() if relay else cls()
        if not path.exists():
            return config
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise UsageError(f"{path} must hold a JSON object")
        known = {f.name: f for f in fields(cls) if f.name != "fsync"}
        for key, value in raw.items():
            if key not in known:
                raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(known)})")
            expected = type(getattr(config, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is list and not all(isinstance(v, str) for v in value)):
                raise UsageError(f"{path}: setting {key!r} should be a {expected.__name__}")
            setattr(config, key, value)
        for address in config.announce:
            check_announce(address)
        return config

    def to_json(self) -> str:
        """What `load` reads back (``fsync`` is never written: a home's file cannot turn it off)."""
        return json.dumps({k: v for k, v in asdict(self).items() if k != "fsync"}, indent=2)
