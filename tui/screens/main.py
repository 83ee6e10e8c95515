"""The main window: circles on the left, one view of the open circle on the right.

Views come from the node (`views`) and are redrawn whenever the node reports new ops for
the open circle: a burst of events becomes one refresh (a short debounce), and the
refresh runs in an exclusive worker, so a slow node never freezes typing or scrolling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Static

from kith.identity.errors import KithError
from kith.p2pnet.control import METHOD_NOT_FOUND
from kith.sync.kinds.schema import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from kith.sync.precheck import check_text
from kith.tui.member_text import NAME, line, plain, visible
from kith.tui.messages import CircleChosen
from kith.tui.rpc import NodeError
from kith.tui.screens.form import Field, FormScreen, field_of
from kith.tui.widgets.aid import AidPane
from kith.tui.widgets.care import CarePane
from kith.tui.widgets.events import EventsPane
from kith.tui.widgets.feed import FeedPane
from kith.tui.widgets.footer import KeyFooter
from kith.tui.widgets.fund import FundPane
from kith.tui.widgets.members import MembersPane
from kith.tui.widgets.network import NetworkPane
from kith.tui.widgets.pane import Pane
from kith.tui.widgets.sidebar import CircleList, circle_name
from kith.tui.widgets.start import StartPanel

PANES: tuple[tuple[str, type[Pane]], ...] = (
    ("feed", FeedPane),
    ("care", CarePane),
    ("aid", AidPane),
    ("fund", FundPane),
    ("events", EventsPane),
    ("people", MembersPane),
    ("net", NetworkPane),
)
CHECKIN = (("ok: doing ok", "ok"), ("struggling", "struggling"), ("need help now", "need-help"))
REFRESH_DEBOUNCE_S = 0.1
COUNTED_KINDS = {"msg.post", "checkin"}
REMOVED_BANNER = (
    "You are no longer a member of this circle (you were removed, or you left). You can still read "
    "what was shared while you were in; nothing new reaches you, and you cannot post, pledge or vote here."
)
REMOVED_REFUSAL = "You are no longer a member of this circle: you can read what was shared before, not write."


class MainScreen(Screen[None]):
    BINDINGS = [
        *(
            Binding(str(number), f"tab('{name}')", pane.TITLE, show=False)
            for number, (name, pane) in enumerate(PANES, start=1)
        ),
        Binding("g", "circles", "Circles"),
        Binding("i", "invite", "Invite"),
        Binding("j", "join", "Join"),
        Binding("plus", "new_circle", "New circle"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.circles: list[dict[str, Any]] = []
        self.current: str | None = None
        self.views: dict[str, Any] | None = None
        self.unread: dict[str, int] = {}
        self.last_activity: dict[str, float] = {}
        self.peers = 0
        self._refresh_due = False
        self.dropped = 0
        self.tab = "feed"
        self.first_run = False
        """In no circle yet: the start panel takes the place of the circle views."""

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar")
        with Horizontal(id="body"):
            yield CircleList(id="circles")
            with Vertical(id="content"):
                yield StartPanel(id="start")
                yield Static("", id="circle-title")
                yield Static("", id="removed-banner")
                yield Static("", id="tabbar")
                with ContentSwitcher(initial="feed", id="panes"):
                    for name, pane in PANES:
                        yield pane(id=name)
        yield KeyFooter()

    def on_mount(self) -> None:
        self._draw_tabbar()
        self._draw_topbar()
        self._draw_title()
        self.load_circles(choose_first=True)
        self.load_peers()

    # --- drawing --------------------------------------------------------------------

    def _draw_topbar(self) -> None:
        me = self.app.me  # type: ignore[attr-defined]
        text = line("kith · ", plain(me.get("name", ""), limit=NAME))
        text.append(f" │ {self.peers} peer{'' if self.peers == 1 else 's'} connected")
        if self.app.demo:  # type: ignore[attr-defined]
            text.append(" │ DEMO MODE: throwaway keys")
        self.query_one("#topbar", Static).update(text)

    def _draw_tabbar(self) -> None:
        text = Text()
        for number, (name, pane) in enumerate(PANES, start=1):
            label = f"{number} {pane.TITLE}"
            if name == self.tab:
                text.append(f"[{label}]", style="bold reverse")
            else:
                text.append(f" {label} ")  # as wide as the brackets: nothing shifts when switching
        self.query_one("#tabbar", Static).update(text)

    def _draw_title(self) -> None:
        title = self.query_one("#circle-title", Static)
        if self.views is None:
            title.update(line("No circle open. Press + to start a circle or j to join one."))
            self.query_one("#removed-banner", Static).display = False
            return
        count = len(self.views["members"])
        circle = self.current_circle or {"id": self.views["id"], "name": self.views["name"]}
        title.update(line(circle_name(circle, self.circles), f" · {count} members", style="bold"))
        banner = self.query_one("#removed-banner", Static)
        banner.display = not self.am_member
        banner.update(line(REMOVED_BANNER))

    @property
    def current_circle(self) -> dict[str, Any] | None:
        return next((c for c in self.circles if c["id"] == self.current), None)

    @property
    def am_member(self) -> bool:
        """Is this member still in the open circle (not removed, not left)?"""
        circle = self.current_circle
        return circle is None or circle.get("am_member", True)

    def refuse_if_removed(self) -> bool:
        """Say so, once, when the open circle no longer has this member; True if refused."""
        if self.am_member:
            return False
        self.app.notify(REMOVED_REFUSAL, title="Not sent", severity="warning", timeout=8)
        return True

    # --- loading --------------------------------------------------------------------

    @work(exclusive=True, group="circles")
    async def load_circles(self, choose_first: bool = False) -> None:
        try:
            circles = await self.app.call("circles")  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        # Member circles first; one this member was removed from stays listed, read-only.
        self.circles = sorted(circles, key=lambda c: not c["am_member"])
        self._show_first_run(not self.circles)
        if self.current is None and self.circles and choose_first:
            self.choose(self.circles[0]["id"])
        self.query_one(CircleList).show(self.circles, self.unread, self.current)
        if self.views is not None:
            self._draw_title()

    def _show_first_run(self, first_run: bool) -> None:
        """Swap the start panel and the circle views (the sidebar too: it would list nothing)."""
        if first_run == self.first_run:
            return
        self.first_run = first_run
        self.query_one(StartPanel).display = first_run
        for selector in ("#circles", "#circle-title", "#tabbar", "#panes"):
            self.query_one(selector).display = not first_run
        self.refresh_bindings()
        if self.app.screen is self:
            self._focus_view()

    def _focus_view(self) -> None:
        """Keep the focus on something shown: the start panel, or the open view after it."""
        start = self.query_one(StartPanel)
        if self.first_run:
            start.focus_main()
        elif self.focused is None or start in self.focused.ancestors_with_self:
            self.query_one(f"#{self.tab}", Pane).focus_main()

    def on_screen_resume(self) -> None:
        self._focus_view()  # a dialog closed: the first circle may have arrived behind it

    @work(exclusive=True, group="peers")
    async def load_peers(self) -> None:
        try:
            status = await self.app.call("status")  # type: ignore[attr-defined]
        except KithError:
            return
        self.peers = len(status["peers"])
        self._draw_topbar()
        self.query_one(StartPanel).show_peers(self.peers)
        net = self.query_one(NetworkPane)
        if self.tab == "net":
            net.render_status(status)

    def choose(self, circle_id: str) -> None:
        if circle_id != self.current:
            self.current = circle_id
            self.views = None
        self.unread.pop(circle_id, None)
        self.query_one(CircleList).show(self.circles, self.unread, self.current)
        self.load_views()

    @work(exclusive=True, group="views")
    async def load_views(self) -> None:
        circle = self.current
        if circle is None:
            return
        try:
            views = await self.app.call("views", circle=circle, feed_limit=100)  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        if circle != self.current:
            return
        first = self.views is None
        self.views = views
        self._draw_title()
        for pane in self.query(Pane):
            pane.show(views)
        if first and self.app.screen is self:
            self.query_one(f"#{self.tab}", Pane).focus_main()

    def refresh_soon(self) -> None:
        if self._refresh_due:
            return
        self._refresh_due = True

        def due() -> None:
            self._refresh_due = False
            self.load_views()
            self.load_circles()

        self.set_timer(REFRESH_DEBOUNCE_S, due)

    # --- node events ----------------------------------------------------------------

    def node_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        dropped = event.get("dropped", 0)
        if isinstance(dropped, int) and dropped > self.dropped:
            self.dropped = dropped  # the node had to drop events for us: re-read everything
            self.refresh_soon()
        if kind in ("ops", "rejected"):
            circle = event.get("circle", "")
            self.last_activity[circle] = time.time()
            if circle != self.current:
                me = self.app.me.get("member_id")  # type: ignore[attr-defined]
                fresh = sum(
                    1 for op in event.get("ops", ()) if op.get("kind") in COUNTED_KINDS and op.get("author", me) != me
                )
                if fresh:
                    self.unread[circle] = self.unread.get(circle, 0) + fresh
            self.refresh_soon()
        elif kind in ("peer", "synced"):
            self.load_peers()
        elif kind == "joined":
            from kith.tui.screens.join import JoinScreen

            for screen in self.app.screen_stack:
                if isinstance(screen, JoinScreen):
                    screen.joined(event.get("name"))
            self.app.notify(f"You are in {visible(event.get('name'), NAME) or 'the circle'} now.")
            self.load_circles(choose_first=True)
        elif kind == "join_refused":
            from kith.tui.screens.join import JoinScreen

            for screen in self.app.screen_stack:
                if isinstance(screen, JoinScreen):
                    screen.refused(visible(event.get("reason")))
            self.app.notify(f"A join request was refused: {visible(event.get('reason'))}", severity="warning")
        elif kind == "private_checkin":
            # Only organizers get these; say nothing of who (a notification can be seen over a shoulder).
            if event.get("status") != "ok":
                self.app.notify("Someone checked in privately and may need you. See Care (2).", timeout=15)
            if event.get("circle") == self.current:
                self.refresh_soon()
        elif kind == "join_request":
            who = visible(event.get("name"), NAME) or "Someone"
            circle = next((c for c in self.circles if c["id"] == event.get("circle")), None)
            where = circle_name(circle, self.circles).plain if circle else "a circle"
            self.app.notify(f"{who} asked to join {where} with an invite. See People (6) to let them in.", timeout=15)
            self.refresh_soon()

    @on(CircleChosen)
    def _circle_chosen(self, message: CircleChosen) -> None:
        self.choose(message.circle_id)
        self.query_one(f"#{self.tab}", Pane).focus_main()

    # --- acting ---------------------------------------------------------------------

    def act(self, method: str, done: str, **params: Any) -> None:
        if self.current is None:
            self.app.notify("Open a circle first.")
            return
        if self.refuse_if_removed():
            return
        self._act(method, done, dict(params, circle=self.current))

    @work(group="actions")
    async def _act(self, method: str, done: str, params: dict[str, Any]) -> None:
        try:
            result = await self.app.call(method, **params)  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), title="Not done", severity="error", timeout=8)
            return
        if isinstance(result, dict) and result.get("rejected"):
            refused = f"The circle's rules refused this: {visible(result['rejected'])}"
            self.app.notify(refused, title="Refused", severity="warning", timeout=8)
        else:
            self.app.notify(done)
        self.refresh_soon()

    def ask_checkin(self) -> None:
        if self.refuse_if_removed():
            return

        def send(values: dict[str, Any] | None) -> None:
            if values is not None:
                private = {"private": True} if values["private"] else {}
                self.act("checkin", "Checked in. Thank you for letting the circle know.",
                         status=values["status"], note=values["note"] or None, **private)  # fmt: skip

        fields = [
            Field("status", "How are you doing?", kind="choice", choices=CHECKIN),
            field_of("checkin", "note", "A few words"),
            field_of("checkin", "private", "Private: only organizers see it"),
        ]
        self.app.push_screen(FormScreen("Check in", fields, submit="Check in"), send)

    def reply_to(self, item_id: str, name: str) -> None:
        if self.refuse_if_removed():
            return

        def send(values: dict[str, Any] | None) -> None:
            if values is not None:
                self.act("post", "Replied.", text=values["text"], reply_to=item_id)

        title = line("Reply to ", plain(name, limit=NAME))
        self.app.push_screen(FormScreen(title, [field_of("post", "text", "Reply")]), send)

    # --- screen actions -------------------------------------------------------------

    def action_tab(self, name: str) -> None:
        self.tab = name
        self.query_one("#panes", ContentSwitcher).current = name
        self._draw_tabbar()
        pane = self.query_one(f"#{name}", Pane)
        pane.focus_main()
        if name == "net":
            self.query_one(NetworkPane).load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Before the first circle, only starting, joining, connecting, help and quitting apply."""
        return not (self.first_run and action in ("circles", "invite", "tab"))

    def action_circles(self) -> None:
        self.query_one(CircleList).focus()

    def action_new_circle(self) -> None:
        def create(values: dict[str, Any] | None) -> None:
            if values is not None:
                self._create_circle(values["name"], values["description"])

        fields = [
            field_of("circle.create", "name", "Name (only members ever see it)"),
            field_of("circle.create", "description", "Description"),
        ]
        note = "You become its organizer and its first treasurer; then press i to invite people."
        form = FormScreen("Start a circle", fields, submit="Create", note=note, convert=check_new_circle)
        self.app.push_screen(form, create)

    def action_connect(self) -> None:
        """Dial a peer or relay: the Net view's form, from wherever the person is."""
        self.query_one(NetworkPane).action_connect()

    @work(group="actions")
    async def _create_circle(self, name: str, description: str) -> None:
        try:
            created = await self.app.call("circle.create", name=name, description=description)  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.notify(f"Started {visible(created['name'], NAME)}. You are its organizer; press i to invite people.")
        self.current = None
        self.choose(created["id"])
        self.load_circles()

    @work(group="invite")
    async def action_invite(self) -> None:
        from kith.tui.screens.invite import InviteScreen

        if self.current is None or self.views is None:
            self.app.notify("Open a circle first.")
            return
        if self.refuse_if_removed():
            return
        try:
            invite = await self.app.call("invite.create", circle=self.current)  # type: ignore[attr-defined]
        except NodeError as exc:
            if exc.code == METHOD_NOT_FOUND:
                self.app.notify("Your node cannot make invites yet (it needs a newer kith).", severity="warning")
            else:
                self.app.notify(str(exc), severity="error")
            return
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.push_screen(InviteScreen(self.current_circle or self.views, invite, self.circles))

    def action_join(self) -> None:
        from kith.tui.screens.join import JoinScreen

        self.app.push_screen(JoinScreen(), self._joined)

    def _joined(self, _result: object) -> None:
        self.load_circles(choose_first=True)

    def action_help(self) -> None:
        from kith.tui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen(self.binding_groups()))

    # --- help and the command palette -----------------------------------------------

    def binding_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Keys by view: the open view first, then the keys that work everywhere, then the rest."""
        groups = []
        for name, pane in sorted(PANES, key=lambda item: item[0] != self.tab):
            keys = [(b.key, b.description) for b in self._bindings_of(self.query_one(f"#{name}"))]
            groups.append((f"{pane.TITLE} (key {PANES.index((name, pane)) + 1})", keys))
            if name == self.tab:
                groups.append(("Everywhere", self._keys_everywhere()))
        return groups

    def _keys_everywhere(self) -> list[tuple[str, str]]:
        """The keys this screen and the app answer, as Textual resolves them now (a priority
        key of the app, such as Ctrl+C, wins over the screen's), so help says what they do."""
        found = []
        for key, (node, binding, _enabled, _tooltip) in self.active_bindings.items():
            if node in (self, self.app) and binding.description and not binding.action.startswith("tab("):
                found.append((key, binding.description))
        return found

    @staticmethod
    def _bindings_of(node: Any) -> list[Binding]:
        return [b for _key, b in node._bindings if b.description]

    def palette_commands(self) -> Iterator[SystemCommand]:
        if self.first_run:  # no circle to show or act in: only the first screen's choices
            yield SystemCommand("Connect to a relay", "key c: dial a relay's address", self.action_connect)
            for binding in self._bindings_of(self):
                if self.check_action(binding.action.split("(")[0], ()):
                    action = partial(self.run_action, binding.action)
                    yield SystemCommand(binding.description, f"key {binding.key}", action)
            return
        for number, (name, pane) in enumerate(PANES, start=1):
            yield SystemCommand(f"Show {pane.TITLE}", f"key {number}: {pane.HELP}", partial(self.action_tab, name))
        for name, pane_type in PANES:
            mounted = self.query_one(f"#{name}", Pane)
            for binding in self._bindings_of(mounted):
                if mounted.check_action(binding.action.split("(")[0], ()) is False:
                    continue
                yield SystemCommand(
                    f"{pane_type.TITLE}: {binding.description}",
                    f"key {binding.key} in {pane_type.TITLE}",
                    partial(self._run_pane_action, name, binding.action),
                )
        for binding in self._bindings_of(self):
            if binding.action.startswith("tab("):
                continue
            yield SystemCommand(binding.description, f"key {binding.key}", partial(self.run_action, binding.action))

    def _run_pane_action(self, name: str, action: str) -> None:
        self.action_tab(name)
        self.call_later(self.query_one(f"#{name}", Pane).run_action, action)


def check_new_circle(values: dict[str, Any]) -> dict[str, Any]:
    """The checks the node runs on ``circle.create`` (sync/precheck.py), before asking it."""
    check_text(values["name"], "name", MAX_NAME_CHARS)
    check_text(values["description"] or "-", "description", MAX_DESCRIPTION_CHARS, short=False)
    return values
