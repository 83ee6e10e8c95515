"""Node settings: where to listen, whom to dial, how often to reconcile.

Defaults suit a member's laptop. A relay listens on a fixed port so invites can carry its
address. Settings come from ``<home>/config.json`` (optional) and command-line flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from identity.errors import UsageError

DEFAULT_RELAY_PORT = 4747


@dataclass
class NodeConfig:
    listen: list[str] = field(default_factory=lambda: ["/ip4/0.0.0.0/tcp/0"])
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
        known = {f.name: f for f in fields(cls)}
        for key, value in raw.items():
            if key not in known:
                raise UsageError(f"{path}: unknown setting {key!r} (known: {', '.join(known)})")
            expected = type(getattr(config, key))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is list and not all(isinstance(v, str) for v in value)):
                raise UsageError(f"{path}: setting {key!r} should be a {expected.__name__}")
            setattr(config, key, value)
        return config

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)
