"""The footer of key bindings, fitted to the terminal's width.

Textual's `Footer` lays every shown binding out in one row and lets the row run off the
right edge: at 80 columns the main window lost ``? Help`` and ``q Quit``, the two keys a
newcomer needs most. This footer keeps them (and the command palette's key) whatever the
width, then adds the other keys in their usual order (the open view's first) while they
fit. A key left out is never lost: Help (``?``) lists every key and the palette finds
every action by name.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # the widget Textual's own footer draws keys with

ESSENTIAL = frozenset({"help", "app.quit", "quit"})
"""Actions whose keys the footer always shows."""
PALETTE_CELLS = 1
"""The rule left of the palette's key (Textual docks that key at the right)."""


def key_cells(key_display: str, description: str) -> int:
    """How wide a compact footer key is: "key description" and a one-cell gap after it."""
    return cell_len(key_display) + (1 + cell_len(description) if description else 0) + 1


class KeyFooter(Footer):
    """A compact, one-row footer that drops the least needed keys instead of Help and Quit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(compact=True, **kwargs)

    def shown_bindings(self, width: int) -> tuple[list[tuple[Binding, bool, str]], Binding | None]:
        """The bindings to show at ``width`` cells (in their usual order), and the palette's."""
        active = self.screen.active_bindings
        seen: set[str] = set()
        bindings: list[tuple[Binding, bool, str]] = []
        for _node, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in seen:  # one key per action, as Footer does
                seen.add(binding.action)
                bindings.append((binding, enabled, tooltip))
        palette = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = active.get(self.app.COMMAND_PALETTE_BINDING)
            palette = found[1] if found is not None else None
        room = width
        if palette is not None:
            room -= PALETTE_CELLS + key_cells(self.app.get_key_display(palette), palette.description) - 1

        def cells(binding: Binding) -> int:
            return key_cells(self.app.get_key_display(binding), binding.description)

        keep = {id(b) for b, _enabled, _tip in bindings if b.action in ESSENTIAL}
        room -= sum(cells(b) for b, _enabled, _tip in bindings if id(b) in keep)
        for binding, _enabled, _tooltip in bindings:
            if id(binding) not in keep and cells(binding) <= room:
                keep.add(id(binding))
                room -= cells(binding)
        return [item for item in bindings if id(item[0]) in keep], palette

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        bindings, palette = self.shown_bindings(self.app.size.width)
        for binding, enabled, tooltip in bindings:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if palette is not None:
            yield FooterKey(
                palette.key,
                self.app.get_key_display(palette),
                palette.description,
                palette.action,
                classes="-command-palette",
                tooltip=palette.tooltip or palette.description,
            )

    def on_resize(self) -> None:
        if self._bindings_ready:
            self.call_after_refresh(self.recompose)
