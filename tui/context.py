"""What every command handler receives: where the home is and how to talk back."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from kith.p2pnet.home import Home
from kith.tui.member_text import visible


@dataclass
class Context:
    home: Home
    json: bool
    passphrase_file: str | None
    stream: TextIO | None = None

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print ``data`` as JSON with --json, else the human ``text``.

        The text often quotes members (names, titles, reasons): whatever a command forgot
        to make safe, no control character reaches the terminal from here (JSON escapes
        them itself)."""
        if self.json:
            print(json.dumps(data, indent=None, sort_keys=True), file=self.out)
        elif text is not None:
            print(visible(text, None, multiline=True), file=self.out)
