"""Joining a circle with an invite code, and watching the request until it is answered.

The code is checked here first with the same pure decoder the node uses
(`sync.invites.InviteCode.decode`), so a typo or a half-pasted code is one line at once,
not a round trip. Once the request is out, the screen asks the node every second where
it stands (`joins`, `status`) as well as listening for the `joined` and `join_refused`
events, so a missed event never leaves it stale. It says one of: waiting for the circle
(someone is connected), cannot reach anyone yet (nobody at all after a grace period,
with what to do), refused with the circle's reason, or in, with the circle's name.

The name comes from whichever answer arrives first, in any order: the `joined` event
(which can arrive before the node's reply to `join` on a busy machine, when the inviter
answers at once) or, once the request has left `joins`, the `circles` listing (the one
circle listed now that was not before asking).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from kith.identity.errors import KithError, UsageError
from kith.p2pnet.control import METHOD_NOT_FOUND
from kith.sync.invites import InviteCode
from kith.tui.member_text import NAME, line, plain
from kith.tui.rpc import NodeError

WAITING = (
    "Request pending: waiting for the circle to let you in: an organizer's node answers when it is "
    "online (or an organizer confirms you, if the circle asks for that). You can close this and "
    "carry on; the circle appears on its own once you are in."
)
UNREACHABLE = (
    "! Cannot reach anyone yet: nobody answered at the addresses in the code. Your request is kept "
    "and goes out as soon as your node reaches someone in the circle. Ask the person who invited "
    "you to open kith, or ask your organizer for the relay's address: Esc, then c to connect."
)


def check_invite_code(text: str, now: float) -> InviteCode:
    """The code as the node will read it; `KithError` with one line for anything wrong."""
    code = InviteCode.decode(text)
    if code.expires is not None and now > code.expires:
        raise UsageError("this invite has expired; ask the person who invited you for a new one")
    return code


class JoinScreen(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "close", "Close")]
    UNREACHABLE_AFTER_S: ClassVar[float] = 8.0
    """How long the node may try the code's addresses before the screen says nobody answered."""
    POLL_S: ClassVar[float] = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.state = "idle"
        """idle, sending, waiting, unreachable, refused or joined."""
        self._sent_at = 0.0
        self._name: str | None = None
        """The circle's name from a `joined` event, kept if it came before the reply to `join`."""
        self._before: dict[str, str] | None = None
        """The circles listed before asking (`circles`), to tell which one is new."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="join"):
            yield Label("Join a circle", id="dialog-title")
            yield Static(
                "Paste the invite code someone gave you (it starts with KITH-INVITE:). It works until "
                "it is used up or expires.",
                classes="note",
            )
            yield Input(placeholder="KITH-INVITE:…", id="code")
            yield Static("", id="join-status")
            yield Static("Enter: join · Esc: close", classes="hint")

    def on_mount(self) -> None:
        self.set_interval(self.POLL_S, self._poll)

    def say(self, text: str | Text) -> None:
        self.query_one("#join-status", Static).update(line(text))

    @on(Input.Submitted, "#code")
    def _submit(self, event: Input.Submitted) -> None:
        if self.state in ("sending", "waiting", "unreachable", "joined"):
            return  # one request per screen; the node keeps it until it is answered
        text = event.value.strip()
        if not text:
            self.say("! paste a code first")
            return
        try:
            check_invite_code(text, time.time())
        except KithError as exc:
            self.say(line("! ", str(exc)))
            return
        self.say("Sending your request…")
        self.state = "sending"
        self.join(text)

    @work(exclusive=True, group="join")
    async def join(self, code: str) -> None:
        self._before = await self._listed()
        try:
            result = await self.app.call("join", code=code)  # type: ignore[attr-defined]
        except NodeError as exc:
            if exc.code == METHOD_NOT_FOUND:
                self.say("! Your node cannot join by invite yet (it needs a newer kith).")
            else:
                self.say(line("! ", str(exc)))
            self.state = "idle"
            return
        except KithError as exc:
            self.say(line("! ", str(exc)))
            self.state = "idle"
            return
        self.result = result
        self._sent_at = time.monotonic()
        self.query_one("#code", Input).disabled = True
        self.state = "waiting"
        self.say(WAITING)
        self._poll()

    @work(exclusive=True, group="join-poll")
    async def _poll(self) -> None:
        if self.result is None or self.state in ("refused", "joined"):
            return
        try:
            joins = await self.app.call("joins")  # type: ignore[attr-defined]
            status = await self.app.call("status")  # type: ignore[attr-defined]
        except KithError:
            return  # the app already says when the node is gone
        mine = [j for j in joins if j["topic"] == self.result["topic"]]
        if not mine:
            self.joined(self._name or await self._new_circle_name())
        elif mine[0]["refused"]:
            self.refused(mine[0]["refused"])
        elif status["peers"]:
            self.state = "waiting"
            self.say(WAITING)
        elif time.monotonic() - self._sent_at >= self.UNREACHABLE_AFTER_S:
            self.state = "unreachable"
            self.say(UNREACHABLE)

    def refused(self, reason: str) -> None:
        """The circle answered no (the `join_refused` event, or `joins` says so)."""
        self.state = "refused"
        self.say(
            line(
                "! The circle refused the request: ",
                plain(reason),
                ". Ask the person who invited you for a new code.",
            )
        )

    async def _listed(self) -> dict[str, str] | None:
        """Circle id -> name as the node lists them now; None if it cannot be asked."""
        try:
            circles = await self.app.call("circles")  # type: ignore[attr-defined]
        except KithError:
            return None  # the join's own call (or the app) says what is wrong with the node
        return {c["id"]: c["name"] for c in circles}

    async def _new_circle_name(self) -> str | None:
        """The name of the one circle listed now that was not before asking, if there is one."""
        now = await self._listed() if self._before is not None else None
        new = [name for circle, name in (now or {}).items() if circle not in (self._before or {})]
        return new[0] if len(new) == 1 else None

    def joined(self, name: str | None = None) -> None:
        """Our welcome arrived (the `joined` event, or the request left `joins`)."""
        if self.result is None:
            if self.state == "sending" and name:
                self._name = name  # the event beat the reply to `join`: kept for when it comes
            return
        name = name or self._name
        if self.state == "joined" and not name:
            return
        self.state = "joined"
        self.result = dict(self.result, status="joined")
        where = plain(name, limit=NAME) if name else "the circle"
        self.say(line("You are in ", where, ". Esc closes this and opens it."))

    def action_close(self) -> None:
        self.dismiss(self.result)
