"""Messages the whole client passes around (widget-local messages live in their widget)."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class NodeEvent(Message):
    """A notification from the node (`ops`, `peer`, `synced`, ..., or `disconnected`)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class CircleChosen(Message):
    """The person picked a circle in the sidebar."""

    def __init__(self, circle_id: str) -> None:
        super().__init__()
        self.circle_id = circle_id


class ViewsChanged(Message):
    """Fresh views of the open circle arrived from the node."""

    def __init__(self, views: dict[str, Any]) -> None:
        super().__init__()
        self.views = views


class Acted(Message):
    """An action finished at the node (posted to the screen so panes can follow up)."""

    def __init__(self, method: str, result: Any) -> None:
        super().__init__()
        self.method = method
        self.result = result
