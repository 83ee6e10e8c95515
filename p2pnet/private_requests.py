"""Private requests and check-ins on a member's node: sealed to the circle's organizers.

A member asks for help without telling the circle who asked: the request (or a check-in,
or a report) is a signed statement sealed to each organizer (`sync.private`), on the
circle's topic as a private envelope that every member stores but only organizers open.
An organizer's node opens it; for a request, after a random delay and its turn among the
organizers, it posts an ``aid.request`` placeholder whose boxes tell only organizers who
asked and why, so the circle sees that help is needed and nobody's timing points at the
asker. Check-ins and reports stay with the organizers (`sync.reports`).

`PrivateRequests` gets what it uses: the circles, the keystore (our own requests, so we
can read them back), an `emit`, a clock, ``send`` (store and gossip an envelope),
``wake`` (look at duties now), and the allocation service (asks to the fund travel the
same way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kith.identity.errors import RemoteProtocolError, Undecryptable, UsageError
from kith.p2pnet.allocation import AllocationService
from kith.p2pnet.events import Emit
from kith.sync.kinds.aid import item_content
from kith.sync.kinds.records import ORGANIZER
from kith.sync.lifecycle import TURN_DELAY_S
from kith.sync.private import (
    make_statement,
    open_private,
    open_private_box,
    private_ref,
    seal_private,
    seal_private_box,
)
from kith.sync.reports import REPORT_KIND, ReportBook

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle, MemberCircles
    from kith.p2pnet.keyfile import Keystore
    from kith.sync.envelope import Envelope
    from kith.sync.ops import SignedOp

log = logging.getLogger("kith.lifecycle")

PRIVATE_QUOTA = 4 * 1024 * 1024
"""Bytes of private requests and check-ins a member keeps per circle (most members cannot
open them, so they cannot tell junk from real ones; organizers open and keep theirs)."""


class PrivateRequests:
    def __init__(
        self,
        circles: MemberCircles,
        *,
        keystore: Keystore,
        emit: Emit,
        clock: Callable[[], float],
        send: Callable[[Circle, Envelope], None],
        wake: Callable[[], None],
        private_delay_s: float,
        alloc: AllocationService,
    ) -> None:
        self.circles = circles
        self.keystore = keystore
        self.emit = emit
        self.clock = clock
        self.send = send
        self.wake = wake
        self.private_delay_s = private_delay_s
        self.alloc = alloc
        self.checkins: dict[bytes, dict[bytes, dict[str, Any]]] = {}
        """Circle id -> check-ins sealed to us as an organizer, by envelope id."""
        self.proxies: dict[bytes, tuple[bytes, SignedOp]] = {}
        """Request ref -> (circle id, the member's statement): requests waiting to be posted."""
        self._due_since: dict[tuple[bytes, str], float] = {}
        """Turn-taking for posting private requests (see `serve_proxies`)."""
        self.bytes_stored: dict[bytes, int] = {}
        """Circle id -> bytes of private envelopes stored."""
        self.reports: dict[bytes, ReportBook] = {}
        """Circle id -> the reports sealed to us as an organizer (rebuilt from the store)."""

    @property
    def me(self) -> bytes:
        return self.circles.identity.member_id

    def over_quota(self, circle: Circle, envelope: Envelope) -> bool:
        """Would storing ``envelope`` take the circle's private envelopes past `PRIVATE_QUOTA`?"""
        return self.bytes_stored.get(circle.id, 0) + len(envelope.data) > PRIVATE_QUOTA

    def on_envelope(self, circle: Circle, envelope: Envelope) -> None:
        """A private envelope of ``circle`` was stored: count it, and act on it if it is ours."""
        self.bytes_stored[circle.id] = self.bytes_stored.get(circle.id, 0) + len(envelope.data)
        self._on_private(circle, envelope)

    def _organizer_keys(self, circle: Circle) -> list[bytes]:
        state = circle.replica.state
        return [state.cards[m] for m, member in sorted(state.members.items())
                if ORGANIZER in member.roles and m in state.cards]  # fmt: skip

    def send_to_organizers(self, circle: Circle, kind: str, body: dict[str, Any]) -> bytes:
        """Send a private request or check-in to the organizers; returns the envelope id."""
        state = circle.replica.state
        if self.me not in state.members:
            raise UsageError("you are not a member of this circle (yet, or any more)")
        organizers = self._organizer_keys(circle)
        if not organizers:
            raise UsageError("this circle has no organizer to receive it")
        now = int(self.clock())
        statement = make_statement(self.circles.identity, circle.id, kind, body, ts=now)
        envelope = seal_private(
            statement, organizers, epoch_key=circle.keys.current_key, ts=now,
            rand=self.circles.rand,
        )  # fmt: skip
        if kind == "private.request":
            mine = self.keystore.data.extra.setdefault("private_requests", {})
            mine[private_ref(statement)] = {"circle": circle.id, "description": body["description"]}
            self.keystore.save()
        self.send(circle, envelope)
        return envelope.id

    def _on_private(self, circle: Circle, envelope: Envelope) -> None:
        """Open a private envelope if it is sealed to us as an organizer: an allocation
        ask (`AllocationService`), a report, a check-in, or a request to post for its author."""
        if self.alloc.on_private(circle, envelope):
            return
        state = circle.replica.state
        member = state.members.get(self.me)
        if member is None or ORGANIZER not in member.roles:
            return
        try:
            statement = open_private(envelope, self.circles.identity)
        except Undecryptable:
            return  # not sealed to us (or to no one): nothing to count
        except RemoteProtocolError as exc:
            self.report_book(circle).refuse(exc)  # for us, but not a valid signed statement
            return
        op = statement.op
        if op.kind == REPORT_KIND:
            if self.report_book(circle).take(statement, envelope.id, state) is not None:
                self.emit("report", {"circle": circle.id.hex()})
            return
        if op.circle != circle.id or op.author not in state.members:
            return
        if op.kind == "private.checkin":
            body = op.body
            status = body.get("status")
            if status not in ("ok", "struggling", "need-help"):
                return
            note = body.get("note") if isinstance(body.get("note"), str) else None
            notes = self.checkins.setdefault(circle.id, {})
            if envelope.id not in notes:
                notes[envelope.id] = {"id": envelope.id.hex(), "member": op.author.hex(), "status": status,
                                      "note": (note or "")[:500], "ts": op.ts}  # fmt: skip
                self.emit("private_checkin", {"circle": circle.id.hex(), "status": status})
        elif op.kind == "private.request":
            ref = private_ref(statement)
            if ref not in self.proxies:
                self.proxies[ref] = (circle.id, statement)
                # Each organizer waits its own random delay (then the usual turns): the
                # placeholder's timing must not point at whoever sent the envelope.
                delay = self.private_delay_s * int.from_bytes(self.circles.rand(4), "big") / 2**32
                self._due_since.setdefault((circle.id, "proxy:" + ref.hex()), self.clock() + delay)
            self.wake()

    def report_book(self, circle: Circle) -> ReportBook:
        """The reports this organizer's node opened for ``circle`` (`sync.reports`)."""
        return self.reports.setdefault(circle.id, ReportBook())

    def _proxy_due(self, circle: Circle, ref: bytes) -> bool:
        return not any(item.private and item.private.get("ref") == ref for item in circle.replica.state.aid.values())

    def proxy(self, circle: Circle, ref: bytes, statement: SignedOp) -> None:
        """Post a member's private request on their behalf: the circle sees that it exists."""
        body = statement.op.body
        try:
            item_content({"description": body["description"]})
            amount, unit, category = body.get("amount"), body.get("unit"), body["category"]
        except (KeyError, TypeError, RemoteProtocolError):
            log.warning("ignoring a malformed private request")
            return
        state = circle.replica.state
        organizers = {m: state.cards[m] for m, member in state.members.items()
                      if ORGANIZER in member.roles and m in state.cards}  # fmt: skip
        boxes = {m: seal_private_box(dh, description=body["description"], requester=statement.op.author)
                 for m, dh in organizers.items()}  # fmt: skip
        public = {
            "category": category,
            "content": {"description": "A private request: only organizers can read who asked and why."},
            "amount": amount,
            "unit": unit,
            "expires": body.get("expires"),
            "private": {"ref": ref, "boxes": boxes},
        }
        _envelope, result = self.circles.author(circle, "aid.request", public)
        reason = dict(result.rejected).get(result.applied[0].id) if result.applied else None
        if reason is not None:
            log.warning("the circle refused a private request posted for a member: %s", reason)

    def open_item(self, private: dict[str, Any]) -> dict[str, Any] | None:
        """What this node may read of a private request: an organizer's box, or our own."""
        box = private.get("boxes", {}).get(self.me) if isinstance(private.get("boxes"), dict) else None
        if isinstance(box, bytes):
            try:
                return open_private_box(box, self.circles.identity)
            except RemoteProtocolError:
                return None
        mine = self.keystore.data.extra.get("private_requests", {}).get(private.get("ref"))
        if isinstance(mine, dict):
            return {"description": mine.get("description", ""), "requester": self.me}
        return None

    def _my_turn(self, circle: Circle, duty: str) -> bool:
        """Organizers take turns posting a private request (as `sync.lifecycle` does for keys)."""
        state = circle.replica.state
        organizers = sorted(m for m, member in state.members.items() if ORGANIZER in member.roles)
        if self.me not in organizers:
            return False
        since = self._due_since.setdefault((circle.id, duty), self.clock())
        return self.clock() - since >= organizers.index(self.me) * TURN_DELAY_S

    def serve_proxies(self, circle: Circle) -> None:
        """Post the private requests waiting for us whose turn has come (and forget those
        another organizer posted)."""
        for ref, (circle_id, statement) in list(self.proxies.items()):
            if circle_id != circle.id:
                continue
            if not self._proxy_due(circle, ref):
                del self.proxies[ref]
                continue
            if self._my_turn(circle, "proxy:" + ref.hex()):
                self._due_since.pop((circle.id, "proxy:" + ref.hex()), None)
                del self.proxies[ref]
                self.proxy(circle, ref, statement)
