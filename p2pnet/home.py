"""Where a node keeps its files: one directory, mode 0700, per identity.

The default follows each platform's convention for per-user application data; ``--home``
or ``KITH_HOME`` override it (tests, the demo and relays use their own).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kith.identity.errors import UsageError


def default_home() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "kith"
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "kith"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kith"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, explicit: str | None) -> Home:
        chosen = explicit or os.environ.get("KITH_HOME") or None
        return cls(Path(chosen).expanduser().absolute() if chosen else default_home())

    @property
    def keystore(self) -> Path:
        return self.root / "keystore.kith"

    @property
    def store(self) -> Path:
        return self.root / "envelopes.sqlite"

    @property
    def socket(self) -> Path:
        return self.root / "node.sock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    def exists(self) -> bool:
        return self.keystore.exists()

    def ensure(self) -> None:
        """Create the directory (0700). Refuse a home that others can read."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {self.root}: {exc.strerror}") from exc
        mode = self.root.stat().st_mode & 0o777
        if mode & 0o077:
            try:
                self.root.chmod(0o700)
            except OSError as exc:
                raise UsageError(f"{self.root} is readable by others and cannot be fixed: {exc.strerror}") from exc
