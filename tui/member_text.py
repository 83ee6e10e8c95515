"""Member text made safe to show: never markup, no terminal controls, bounded length.

Everything a member wrote (names, posts, titles, places, notes, reasons), and everything
else that did not come from this program (circle names from invites, join requests from
strangers, relay addresses, the node's error messages that quote them), reaches a
terminal only through this module:

- In the client it becomes a `rich.text.Text`, which is never parsed as markup, so
  ``Picnic [/x]`` is shown as typed instead of raising `MarkupError`, and
  ``[@click=screen.invite]`` stays words instead of becoming a clickable action.
- Control characters (C0, C1, ESC sequences), bidi overrides and isolates, zero-width and
  other invisible characters are shown as escapes such as ``\\x1b`` or ``\\u202e``: a name
  cannot recolour the terminal, reorder what follows it, or pass for another name
  ("al\\u200bice" is not "alice"). A zero-width joiner between two emoji stays, so
  flags such as 🏳️‍🌈 and 🏳️‍⚧️ still draw.
- Absurdly long text is cut for display with an ellipsis; what is stored is untouched.

The command line prints plain strings, so it uses `visible` directly (and `Context.emit`
passes all its output through it once more).
"""

from __future__ import annotations

import re
import unicodedata

from rich.style import StyleType
from rich.text import Text

NAME = 64
"""Display names, circle names, pronouns, units (the protocol's own limit for names)."""
LINE = 200
"""Titles, places, reasons, addresses and other single-line text."""
TEXT = 4_000
"""Posts, descriptions and notes (the protocol's limit for a post)."""

ELLIPSIS = "…"

# Every character of Unicode's categories Cc (controls), Cf (format: bidi, zero-width, tags),
# Cs (lone surrogates, which JSON can carry and a terminal cannot print), Zl and Zp (line and
# paragraph separators), plus characters that draw as nothing (Hangul fillers, the combining
# grapheme joiner, Khmer inherent vowels). tests/tui/test_member_text.py checks the list
# against the running Python's Unicode tables.
_HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\ud800-\udfff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f]"
)
_ZWJ = "\u200d"
_KEPT_IN_LINES = "\n\t"
_IN_ONE_LINE = {"\n": "⏎", "\t": " "}


def _emoji_like(char: str) -> bool:
    return unicodedata.category(char) == "So" or char == "\ufe0f" or "\U0001f3fb" <= char <= "\U0001f3ff"


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _shown(match: re.Match[str], multiline: bool) -> str:
    char = match.group()
    if char in _KEPT_IN_LINES:
        return char if multiline else _IN_ONE_LINE[char]
    if char == _ZWJ:
        text, at = match.string, match.start()
        if 0 < at < len(text) - 1 and _emoji_like(text[at - 1]) and unicodedata.category(text[at + 1]) == "So":
            return char  # part of an emoji sequence: 🏳️‍🌈
    return _escape(char)


def visible(value: object, limit: int | None = LINE, *, multiline: bool = False) -> str:
    """``value`` as a string a terminal shows exactly: invisible and control characters
    escaped (``\\x1b``, ``\\u202e``), cut to ``limit`` characters with an ellipsis.

    ``multiline`` keeps line breaks and tabs (posts, notes); elsewhere a line break shows
    as ⏎ and a tab as a space, so nothing can start a fake line. ``None`` shows as nothing.
    """
    text = "" if value is None else value if isinstance(value, str) else str(value)
    text = text.replace("\r\n", "\n")
    head = text if limit is None else text[: limit + 1]
    shown = _HIDDEN.sub(lambda match: _shown(match, multiline), head)
    if limit is not None and (len(text) > limit or len(shown) > limit):
        shown = shown[: max(0, limit - 1)] + ELLIPSIS
    return shown


def plain(value: object, style: StyleType = "", *, limit: int | None = LINE, multiline: bool = False) -> Text:
    """Member text as a `Text` (never markup), made visible and bounded by `visible`."""
    return Text(visible(value, limit, multiline=multiline), style=style)


def line(*parts: str | Text, style: StyleType = "") -> Text:
    """One `Text` from pieces. A `Text` piece is kept as it is (build member text with
    `plain`); a ``str`` piece is still treated as untrusted: never markup, its invisible
    characters escaped, its line breaks kept, at most `TEXT` characters."""
    text = Text(style=style)
    for part in parts:
        text.append(part if isinstance(part, Text) else visible(part, TEXT, multiline=True))
    return text
