"""Structured logs for long-running nodes: JSON lines in a file, short lines on stderr.

Log records never carry secrets: kith logs ids, counts and peer ids, never keys,
passphrases or plaintext. The file rotates at 10 MiB, keeping three old files.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from pathlib import Path

from kith.p2pnet.atomic import create_private

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


class TerminalSafe(logging.Formatter):
    """Console lines with every control, bidi and invisible character shown as an escape:
    a log line may quote what a peer or member sent (an address, an error), and a terminal
    must not run escape sequences from it."""

    def format(self, record: logging.LogRecord) -> str:
        return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", super().format(record))


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(log_dir: Path | None, *, verbose: bool = False, quiet: bool = False) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO))
    console.setFormatter(TerminalSafe("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    console.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root.addHandler(console)
    if log_dir is not None:
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_private(log_dir / "node.log")  # 0600 whatever the umask (rotated files inherit it)
        handler = logging.handlers.RotatingFileHandler(
            log_dir / "node.log", maxBytes=10 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
    # py-libp2p is chatty at INFO and WARNING during normal churn; keep its errors only.
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    logging.getLogger("multiaddr").setLevel(logging.WARNING)
