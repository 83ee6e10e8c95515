"""The first screen of someone in no circle yet: start one, join one, or reach a relay.

It takes the place of the circle views until the node lists a circle. Each choice runs
the same screen action as its key everywhere else (``+``, ``j``, ``c``), so there is one
form and one check for each, whichever way the person gets there.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from kith.tui.member_text import line

CHOICES = (
    ("new_circle", "+  Start a circle: you become its organizer"),
    ("join", "j  Join a circle with an invite code"),
    ("connect", "c  Connect to a relay, with its address"),
)

RELAYS = (
    "How your node reaches people: there is no kith server. Your node talks to the nodes of "
    "your circle's members while they are online, and to relays: always-on nodes an organizer "
    "runs, which keep and pass on your circle's encrypted envelopes without being able to read "
    "them. An invite code carries addresses to try, so joining usually needs nothing more. "
    "If nobody answers, ask your organizer for the relay's address "
    "(/ip4/HOST/tcp/4747/p2p/PEERID) and press c. Organizers: the README's relay guide says "
    "how to run one."
)


class StartPanel(VerticalScroll):
    """Shown instead of the circle views while the member is in no circle."""

    BINDINGS = [Binding("c", "screen.connect", "Connect to a relay")]

    def compose(self) -> ComposeResult:
        yield Static(line("You are not in a circle yet.", style="bold"), id="start-title")
        yield OptionList(*(Option(line(label), id=action) for action, label in CHOICES), id="start-choices")
        yield Static("", id="start-peers")
        yield Static(line(RELAYS), id="start-relays")

    def focus_main(self) -> None:
        self.query_one("#start-choices", OptionList).focus()

    def show_peers(self, peers: int) -> None:
        if peers:
            text = f"Your node is connected to {peers} peer{'' if peers == 1 else 's'}."
        else:
            text = "Your node is running and connected to nobody yet."
        self.query_one("#start-peers", Static).update(line(text))

    @on(OptionList.OptionSelected, "#start-choices")
    async def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            await self.run_action(f"screen.{event.option.id}")
