"""A QR code drawn with block characters, so an invite can be scanned off a terminal.

Two module rows share one text row (upper and lower half blocks). Dark modules are drawn
as spaces on a light background would be unreadable without colour, so the code is drawn
"light on dark": it scans on the usual dark terminal and, printed, as a negative (which
most phone scanners read).
"""

from __future__ import annotations

import segno

_GLYPHS = {(False, False): "█", (True, False): "▄", (False, True): "▀", (True, True): " "}


def qr_text(data: str, *, border: int = 2) -> str:
    """The QR code of ``data`` (alphanumeric mode when possible, low error correction)."""
    code = segno.make(data, error="l", micro=False)
    matrix = [list(row) for row in code.matrix]
    size = len(matrix)
    padded = [[False] * (size + 2 * border) for _ in range(border)]
    padded += [[False] * border + [bool(cell) for cell in row] + [False] * border for row in matrix]
    padded += [[False] * (size + 2 * border) for _ in range(border + 1)]
    lines = []
    for top in range(0, size + 2 * border, 2):
        upper, lower = padded[top], padded[top + 1]
        lines.append("".join(_GLYPHS[(upper[i], lower[i])] for i in range(len(upper))))
    return "\n".join(lines)
