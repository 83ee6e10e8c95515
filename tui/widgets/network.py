"""Network status: this node, its peers and relays with their last sync, and each circle."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from kith.identity.errors import KithError, UsageError
from kith.sync.invites import MAX_ADDRESS_CHARS
from kith.sync.kinds.keys import relay_address_problem
from kith.tui.member_text import line, plain, visible
from kith.tui.screens.form import Field, field_of
from kith.tui.widgets.pane import Pane, fill_table
from kith.tui.widgets.sidebar import circle_name


def check_peer_address(values: dict[str, Any]) -> dict[str, Any]:
    """The shape of a dialable address, before the node is asked (it parses it fully)."""
    address = "".join(values["address"].split())  # a pasted address may have wrapped
    if not address.startswith("/") or "/p2p/" not in address or len(address) > MAX_ADDRESS_CHARS:
        raise UsageError("not a peer address: it looks like /ip4/HOST/tcp/PORT/p2p/PEERID (ask your organizer)")
    return {"address": address}


def check_relay_address(values: dict[str, Any]) -> dict[str, Any]:
    """A relay address as the circle's list takes it (the rule of relay.add), before signing."""
    address = "".join(values["address"].split())
    problem = relay_address_problem(address)
    if problem is not None:
        raise UsageError(
            f"not a relay address members can dial ({problem}): use the address the relay prints,"
            " like /dns4/relay.example.org/tcp/4747/p2p/PEERID"
        )
    return {"address": address}


def _ago(at: float | None, now: float) -> str:
    if not at:
        return "never"
    seconds = max(0, int(now - at))
    return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60} min ago"


def relay_state(circle: dict[str, Any]) -> str:
    """Whether the circle has a relay this node reaches now (the status's ``relays``)."""
    relays = circle.get("relays") or []
    if not relays:
        return "none listed"
    reached = sum(1 for r in relays if r.get("connected"))
    return f"{reached}/{len(relays)} reachable" if reached else "NOT reachable"


class NetworkPane(Pane):
    TITLE = "Net"
    HELP = "Peers and relays see encrypted envelopes only: never content, names or who wrote what."
    BINDINGS = [
        Binding("s", "sync", "Sync now"),
        Binding("c", "connect", "Connect"),
        Binding("r", "relay_add", "Add relay"),
        Binding("x", "relay_remove", "Remove relay"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="node-line")
        yield Label("Peers and relays", classes="section")
        peers: DataTable[Any] = DataTable(id="peers-table", classes="main", cursor_type="row")
        peers.add_columns("Peer", "Connected", "Last sync", "Received")
        yield peers
        yield Label("Circles", classes="section")
        circles: DataTable[Any] = DataTable(id="circles-table", cursor_type="row")
        circles.add_columns("Circle", "Relay", "Ops", "Envelopes", "Last sync", "Last new op")
        yield circles

    def on_mount(self) -> None:
        self.set_interval(3.0, self._tick)

    def _tick(self) -> None:
        if self.display and self.main.is_current:
            self.load()

    @work(exclusive=True, group="status")
    async def load(self) -> None:
        try:
            status = await self.app.call("status")  # type: ignore[attr-defined]
        except KithError:
            return
        self.render_status(status)

    def render_status(self, status: dict[str, Any]) -> None:
        now = time.time()
        refused = sum(status["refused"].values())
        self.query_one("#node-line", Static).update(
            line(
                line("Your node: ", plain(status["peer_id"], limit=17), " (", plain(status["mode"]), "), "),
                f"up {int(status['uptime_s'])}s, {len(status['peers'])} peers. Refused input: {refused}.",
            )
        )
        rows = []
        for peer in status["peers"]:
            last = peer["last_sync"]
            synced: str | Text
            if last is None:
                synced = "not yet"
            elif last["error"]:
                synced = line("failed: ", plain(last["error"], limit=20))
            else:
                synced = _ago(last["finished"], now)
            # New envelopes this peer gave us since it connected (an older node does not say).
            received = str(peer["received"]) if isinstance(peer.get("received"), int) else "?"
            shown = plain(peer["peer"], limit=15)
            rows.append((peer["peer"], (shown, _ago(peer["connected_at"], now), synced, received)))
        fill_table(self.query_one("#peers-table", DataTable), rows)
        activity = self.main.last_activity
        circles = [
            (
                c["id"],
                (
                    circle_name(c, status["circles"]),
                    relay_state(c),
                    str(c["ops"]),
                    str(c["envelopes"]),
                    _ago(c.get("last_sync"), now),
                    _ago(activity.get(c["id"]), now),
                ),
            )
            for c in status["circles"]
        ]
        fill_table(self.query_one("#circles-table", DataTable), circles)

    @work(group="sync")
    async def action_sync(self) -> None:
        self.app.notify("Reconciling with every peer…")
        try:
            result = await self.app.call("sync")  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        got = sum(r["received"] for r in result["synced"])
        self.app.notify(f"Synced with {len(result['synced'])} peers, {got} new envelopes.")
        self.load()

    def action_connect(self) -> None:
        self.ask(
            "Connect to a peer or relay",
            [Field("address", "Address", required=True, placeholder="/ip4/HOST/tcp/PORT/p2p/PEERID")],
            lambda v: self._connect(v["address"]),
            submit="Connect",
            note="A relay's address comes from your circle's organizer (the relay prints it when it starts).",
            convert=check_peer_address,
            writes=False,
        )

    def action_relay_add(self) -> None:
        self.ask(
            "Add a relay to this circle (organizers)",
            [field_of("relay.add", "address", "Relay address", placeholder="/dns4/NAME/tcp/4747/p2p/PEERID")],
            lambda v: self.act("relay.add", "Relay added: members' nodes dial it, invites carry it.", **v),
            submit="Add",
            note="The relay prints its address when it starts; it must also serve the circle (its relay token).",
            convert=check_relay_address,
        )

    def action_relay_remove(self) -> None:
        self.ask(
            "Remove a relay from this circle (organizers)",
            [field_of("relay.remove", "address", "Relay address", placeholder="as 'kith relay list CIRCLE' shows it")],
            lambda v: self.act("relay.remove", "Relay removed from the circle's list.", **v),
            submit="Remove",
            convert=check_relay_address,
        )

    @work(group="connect")
    async def _connect(self, address: str) -> None:
        try:
            result = await self.app.call("connect", address=address)  # type: ignore[attr-defined]
        except KithError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.notify(f"Connected to {visible(result['peer'], 17)}")
        self.load()
