"""The feed: threads with replies, reactions, folded content warnings, urgent posts marked.

Marks are words and symbols, not only colour: "!! URGENT", "CW:", "(edited)".
Content behind a warning stays folded until the person opens that post with `o`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from kith.tui.member_text import NAME, TEXT, line, plain, visible
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import SEALED, Pane, stamp

REACTIONS = (("💜 love", "💜"), ("🤗 hug", "🤗"), ("👍 yes", "👍"), ("🙏 thanks", "🙏"), ("💪 strength", "💪"))
SEALED_RUN = "sealed before you joined"
CHECKIN_WORDS = {"ok": "doing ok", "struggling": "struggling", "need-help": "NEEDS HELP"}


def visible_lines(text: str | None) -> list[str]:
    """A post's lines, each safe to show (see tui/member_text.py), the whole cut to `TEXT`."""
    return visible(text, TEXT, multiline=True).splitlines() if text else []


def walk(thread: dict[str, Any]) -> list[dict[str, Any]]:
    """A thread's messages: the post, then its replies, depth first."""
    return [thread, *(item for reply in thread["replies"] for item in walk(reply))]


def all_sealed(thread: dict[str, Any]) -> bool:
    """Is every message of the thread one this device holds no key for?"""
    return not any(item.get("readable", True) for item in walk(thread))


class FeedPane(Pane):
    TITLE = "Feed"
    HELP = "Threads, newest at the bottom. Urgent posts are marked !! URGENT; content warnings stay folded."
    BINDINGS = [
        Binding("n", "post", "Post"),
        Binding("r", "reply", "Reply"),
        Binding("e", "react", "React"),
        Binding("o", "open_cw", "Open CW"),
        Binding("c", "checkin", "Check in"),
        # Not in the footer (it is full at 80 columns); in help (?) and the palette.
        Binding("exclamation_mark", "report", "Report to the organizers", show=False),
        Binding("x", "hide", "Hide a post for everyone (organizers)", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.opened: set[str] = set()
        self.items: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="attention")
        yield OptionList(id="feed-list", classes="main")

    @property
    def listing(self) -> OptionList:
        return self.query_one("#feed-list", OptionList)

    def show(self, views: dict[str, Any]) -> None:
        super().show(views)
        attention = views.get("needs_attention") or []
        banner = self.query_one("#attention", Static)
        if attention:
            text = Text("!! Needs attention: ", style="bold")
            for index, item in enumerate(attention[-3:]):
                what = "urgent" if item["kind"] == "urgent" else CHECKIN_WORDS.get(item["status"], item["status"])
                text.append_text(line(", " if index else "", plain(item["author_name"], limit=NAME), f" ({what})"))
            banner.update(text)
            banner.display = True
        else:
            banner.display = False
        listing = self.listing
        previous = listing.highlighted
        at_end = previous is None or previous >= listing.option_count - 1
        keep = listing.get_option_at_index(previous).id if previous is not None and listing.option_count else None
        self.items = {}
        options: list[Option] = []
        sealed: list[dict[str, Any]] = []
        for thread in views.get("feed", []):
            if all_sealed(thread):
                sealed.extend(walk(thread))  # a newcomer's feed starts with many: one line says it
                continue
            self._add_sealed(sealed, options)
            self._add(thread, 0, options)
        self._add_sealed(sealed, options)
        listing.clear_options()
        listing.add_options(options or [Option(Text("No messages yet. Press n to write the first one."), id="none")])
        if not options:
            return
        if at_end or keep not in self.items:
            listing.highlighted = len(options) - 1
        else:
            listing.highlighted = listing.get_option_index(keep)
        self.call_after_refresh(listing.scroll_to_highlight)

    @staticmethod
    def _add_sealed(run: list[dict[str, Any]], options: list[Option]) -> None:
        """One line for a run of messages this device holds no key for (then empties ``run``)."""
        if not run:
            return
        count = f"{len(run)} message{'' if len(run) == 1 else 's'}"
        why = "this circle keeps its history from newcomers"
        text = Text(f"({count} {SEALED_RUN}: {why})", style="italic")
        options.append(Option(text, id=f"sealed-{run[0]['id']}"))
        run.clear()

    def _add(self, entry: dict[str, Any], depth: int, options: list[Option]) -> None:
        self.items[entry["id"]] = entry
        options.append(Option(self.render_item(entry, depth), id=entry["id"]))
        for reply in entry["replies"]:
            self._add(reply, depth + 1, options)

    def render_item(self, entry: dict[str, Any], depth: int) -> Text:
        pad = "  " * min(depth, 6) + ("↳ " if depth else "")
        body_pad = "  " * min(depth, 6) + ("  " if depth else "")
        text = Text(pad)
        if entry["urgent"] and not entry["deleted"]:
            text.append("!! URGENT ", style="bold reverse")
        text.append_text(plain(entry["author_name"], "bold", limit=NAME))
        if entry["author"] == self.me:
            text.append(" (you)")
        text.append(f" · {stamp(entry['ts'])}", style="dim")
        if entry["kind"] == "checkin":
            status = CHECKIN_WORDS.get(entry["status"], entry["status"])
            text.append_text(plain(f" · check-in: {status}", "italic"))
        if entry["edited"]:
            text.append(" · (edited)", style="dim")
        if entry.get("hidden"):
            whose = "your post was hidden" if entry["author"] == self.me else "hidden"
            by = plain(entry.get("hidden_by") or "an organizer", limit=NAME)
            reason = plain(entry["hidden"])
            text.append_text(line(f"\n{body_pad}({whose} by ", by, ": ", reason, ")", style="italic"))
        elif entry["deleted"]:
            text.append(f"\n{body_pad}(deleted by its author)", style="dim")
        elif not entry.get("readable", True):
            text.append(f"\n{body_pad}{SEALED}: this circle keeps earlier words from newcomers", style="italic")
        elif entry["content_warning"] and entry["id"] not in self.opened:
            warning = plain(entry["content_warning"], "italic")
            text.append_text(line(f"\n{body_pad}CW: ", warning, " [folded: press o to open]", style="italic"))
        else:
            if entry["content_warning"]:
                text.append_text(line(f"\n{body_pad}CW: ", plain(entry["content_warning"]), style="italic"))
            for words in visible_lines(entry["text"]):
                text.append(f"\n{body_pad}{words}")
        if entry["reactions"]:
            reactions = "  ".join(f"{emoji} {count}" for emoji, count in entry["reactions"])
            text.append_text(line("\n", body_pad, plain(reactions)))
        return text

    def selected(self) -> dict[str, Any] | None:
        index = self.listing.highlighted
        if index is None or not self.listing.option_count:
            return None
        return self.items.get(self.listing.get_option_at_index(index).id or "")

    def _need_selection(self) -> dict[str, Any] | None:
        entry = self.selected()
        if entry is None:
            self.app.notify("Choose a message first (arrow keys).")
        return entry

    # --- actions ------------------------------------------------------------------

    def action_post(self) -> None:
        self.ask(
            "New post",
            [
                field_of("post", "text", "Message"),
                field_of("post", "content_warning", "Content warning (folds the text until opened)"),
                field_of("post", "urgent", "Urgent: I need support now"),
            ],
            lambda v: self.act(
                "post", "Posted.", text=v["text"], content_warning=v["content_warning"] or None, urgent=v["urgent"]
            ),
        )

    def action_reply(self) -> None:
        entry = self._need_selection()
        if entry is None:
            return
        self.ask(
            line("Reply to ", plain(entry["author_name"], limit=NAME)),
            [field_of("post", "text", "Reply"), field_of("post", "content_warning", "Content warning")],
            lambda v: self.act(
                "post", "Replied.", text=v["text"], reply_to=entry["id"], content_warning=v["content_warning"] or None
            ),
        )

    def action_react(self) -> None:
        entry = self._need_selection()
        if entry is None:
            return
        self.ask(
            line("React to ", plain(entry["author_name"], limit=NAME)),
            [Field("emoji", "Reaction", kind="choice", choices=REACTIONS)],
            lambda v: self.act("react", "Reacted.", target=entry["id"], emoji=v["emoji"]),
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # hiding is for organizers: hidden for everyone else
        return not (action == "hide" and "organizer" not in self.my_roles())

    def action_report(self) -> None:
        entry = self._need_selection()
        if entry is None or entry["kind"] != "post":
            if entry is not None:
                self.app.notify("Only posts can be reported here; report a person from Members.")
            return
        self.ask(
            line("Report ", plain(entry["author_name"], limit=NAME), "'s post to the organizers"),
            [field_of("report", "reason", "What is wrong (only the organizers read it)")],
            lambda v: self.act(
                "report",
                "Sent to the organizers only: nobody else learns it was you.",
                post=entry["id"],
                reason=v["reason"],
            ),  # fmt: skip
            note="Sealed to the organizers: the circle never sees who reported what.",
        )

    def action_hide(self) -> None:
        entry = self._need_selection()
        if entry is None or entry["kind"] != "post" or entry.get("hidden"):
            if entry is not None:
                self.app.notify("Choose a post that is not hidden yet.")
            return
        self.ask(
            line("Hide ", plain(entry["author_name"], limit=NAME), "'s post for everyone"),
            [field_of("hide", "reason", "Why (every member and the author read it)")],
            lambda v: self.act(
                "hide", "Hidden for everyone; the moderation log says why.", target=entry["id"], reason=v["reason"]
            ),  # fmt: skip
        )

    def action_open_cw(self) -> None:
        entry = self._need_selection()
        if entry is None or not entry["content_warning"]:
            return
        self.opened.symmetric_difference_update({entry["id"]})
        if self.views is not None:
            self.show(self.views)

    def action_checkin(self) -> None:
        self.main.ask_checkin()

    @on(OptionList.OptionSelected, "#feed-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        entry = self.items.get(event.option.id or "")
        if entry and entry["content_warning"]:
            self.action_open_cw()
