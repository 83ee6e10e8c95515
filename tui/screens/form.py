"""One modal form for every action that needs input (post, pledge, propose, vote, ...).

Fields are declared as data (`Field`); the caller converts and checks the values (money,
dates) and raises `UsageError` for anything wrong, which the form shows in place, so a
mistake costs one correction, never the whole form. Enter sends from any text field,
Escape cancels: the keyboard is enough.

Each label sits above its field in one group, and the fields scroll as a whole: moving to a
field brings its group (label and field together) into view, so a label never scrolls away
from the field it names, at 80x24 too. The title, the error line and the keys stay put.

Titles, notes, labels and choices often quote members ("Reply to Sam", a proposal's
title, the names in a list of join requests). They are never read as markup: a `Text`
is shown as built, and a ``str`` goes through `tui.member_text.line` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from kith.identity.errors import KithError
from kith.p2pnet.actions import param_of
from kith.sync.kinds.schema import InvalidBody
from kith.sync.precheck import explain
from kith.tui.member_text import line

Convert = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Field:
    name: str
    label: str | Text
    kind: str = "text"
    """"text", "password", "choice" (one of ``choices``) or "flag" (a checkbox)."""
    choices: tuple[tuple[str | Text, str], ...] = ()
    """(what the person reads, the value sent) for "choice" fields: a list to move through with
    the arrow keys, where Enter sends the form like everywhere else."""
    value: Any = ""
    placeholder: str = ""
    required: bool = False
    max_length: int = 0
    """At most this many characters (0: no limit). A longer value is not cut: sending the
    form says the limit, in the node's words, so nothing typed or pasted is lost silently."""


def field_of(method: str, name: str, label: str | Text, **more: Any) -> Field:
    """A field for parameter ``name`` of control method ``method``: whether it is needed, its
    length limit, and (for true/false) that it is a checkbox come from the control API's
    schema (kith.p2pnet.actions), the same the node checks the request against."""
    p = param_of(method, name)
    declared: dict[str, Any] = {"required": p.required, "max_length": p.spec.max_chars or 0}
    if p.base is bool:
        declared["kind"] = "flag"
    return Field(name, label, **{**declared, **more})


class Flag(Checkbox):
    """A checkbox whose state shows without colour: "X" when on, blank when off (Textual's
    draws an "X" either way and tells them apart by colour alone)."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - Textual's name (a class attribute)
        return "X" if self.value else " "


class FormScreen(ModalScreen[dict[str, Any] | None]):
    """A titled form; dismisses with the converted values, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Send"),
    ]

    def __init__(
        self,
        title: str | Text,
        fields: list[Field],
        *,
        submit: str = "Send",
        note: str | Text = "",
        convert: Convert | None = None,
    ) -> None:
        super().__init__()
        self.form_title = title
        self.fields = fields
        self.submit_label = submit
        self.note = note
        self.convert = convert

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label(line(self.form_title), id="dialog-title")
            with VerticalScroll(id="form-fields", can_focus=False):
                if self.note:
                    yield Static(line(self.note), classes="note")
                for field in self.fields:
                    with Vertical(classes="field", id=f"g-{field.name}"):
                        yield from self._field(field)
            yield Static("", id="form-error")
            yield Static(line(f"Enter or Ctrl+S: {self.submit_label.lower()} · Esc: cancel"), classes="hint")

    @staticmethod
    def _field(field: Field) -> ComposeResult:
        widget_id = f"f-{field.name}"
        if field.kind == "flag":
            yield Flag(line(field.label), value=bool(field.value), id=widget_id)
            return
        yield Label(line(field.label, "" if field.required or field.kind == "choice" else " (optional)"))
        if field.kind == "choice":
            choices = [Option(line(label), id=value) for label, value in field.choices]
            options = OptionList(*choices, id=widget_id)
            values = [value for _label, value in field.choices]
            options.highlighted = values.index(field.value) if field.value in values else 0
            yield options
        else:
            yield Input(
                value=str(field.value or ""),
                placeholder=field.placeholder,
                password=field.kind == "password",
                id=widget_id,
            )

    def on_mount(self) -> None:
        self._fit()
        if self.fields:
            self.query_one(f"#f-{self.fields[0].name}").focus()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """The fields take what the terminal leaves after the border, title, error and keys."""
        self.query_one("#form-fields").styles.max_height = max(4, self.app.size.height - 8)

    @staticmethod
    def _group_of(widget: Widget) -> Widget:
        """A field's group (its label and itself), or the widget when it has none."""
        group = widget.parent
        return group if isinstance(group, Vertical) and group.has_class("field") else widget

    @on(events.DescendantFocus)
    def _show_field(self, event: events.DescendantFocus) -> None:
        group = self._group_of(event.widget)
        self.call_after_refresh(self.query_one("#form-fields").scroll_to_widget, group, animate=False, top=False)

    def scroll_to_center(self, widget: Widget, animate: bool = True, **kwargs: Any) -> Any:
        """Textual centres a newly focused field that is not wholly in view: centre its group
        instead, without an animation that would finish after (and undo) `_show_field`."""
        return super().scroll_to_center(self._group_of(widget), animate=False, **kwargs)

    def values(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for field in self.fields:
            widget = self.query_one(f"#f-{field.name}")
            if isinstance(widget, Input):
                found[field.name] = widget.value.strip() if field.kind != "password" else widget.value
            elif isinstance(widget, Checkbox):
                found[field.name] = widget.value
            elif isinstance(widget, OptionList):
                index = widget.highlighted or 0
                found[field.name] = widget.get_option_at_index(index).id if widget.option_count else None
        return found

    def show_error(self, message: str | Text) -> None:
        self.query_one("#form-error", Static).update(line("! ", message))

    @on(Input.Submitted)
    @on(OptionList.OptionSelected)
    def _enter(self, event: Input.Submitted | OptionList.OptionSelected) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        values = self.values()
        for field in self.fields:
            if field.required and not values.get(field.name):
                self.show_error(line(field.label, " is needed"))
                self.query_one(f"#f-{field.name}").focus()
                return
            value = values.get(field.name)
            if field.max_length and isinstance(value, str) and len(value) > field.max_length:
                # The node's own sentence for it (sync.precheck), so the form and the node agree.
                self.show_error(explain(InvalidBody(field.name, "too long", field.max_length)))
                self.query_one(f"#f-{field.name}").focus()
                return
        try:
            result = self.convert(values) if self.convert else values
        except KithError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
