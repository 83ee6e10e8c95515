"""The membership lifecycle on a member's node: carrying out what `sync.lifecycle` decides.

`sync.lifecycle.MembershipLifecycle` decides (sans-IO) who to let in, when to rotate,
share or acknowledge keys; this module feeds it the node's events and carries out its
actions with keys, the store and the network:

* **Invites** are recorded in the circle (``invite.create``) and handed out as codes.
* **Invite topics**: join requests, welcomes and refusals travel on each invite's own topic
  (`sync.invites.invite_topic`), which members serve only while the invite is open, and
  a grace period after it is used up so the welcome gets through. A revoked or expired
  invite's topic is dropped, with what was stored on it.
* **Joining**: the newcomer's node starts following the invite's topic with the code's
  join-only capability, dials the code's addresses, and sends a join request with a fresh nonce. It
  remembers the pending join (and the nonce) in its keystore, so a restart keeps waiting;
  only a welcome signed for that nonce is taken. A refusal is shown with its reason.
* **Approving**: a ``member.add`` naming the request's nonce (it admits once) and a welcome
  sealed to the newcomer, carrying every epoch key we hold and the content keys the
  charter allows.
* **Keys**: rotations (a new key sealed to every member, announced under the old epoch,
  with a relay grant), shares of a key to members who have not acknowledged it, and our
  own ``key.ack`` for every key we install. Every node installs keys sealed to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import trio

from kith.identity.errors import LocalProtocolError, RemoteProtocolError, StorageError, UsageError
from kith.identity.keys import DEFAULT_NAME
from kith.p2pnet.allocation import AllocationService
from kith.p2pnet.events import Emit
from kith.p2pnet.gate import Gate, Verdict
from kith.p2pnet.netstack import NetError
from kith.p2pnet.private_requests import PrivateRequests
from kith.p2pnet.syncproto import AcceptResult
from kith.sync.envelope import (
    Envelope,
    Kind,
    epoch_hints,
    epoch_id,
    epoch_topic,
    open_envelope,
    relay_key,
)
from kith.sync.invites import (
    INVITE_GRACE_S,
    INVITE_TOPIC_QUOTA,
    MAX_INVITE_GRANT_S,
    NO_CONTENT_KEY,
    InviteCode,
    JoinRequest,
    circle_check,
    grant_signing_keypair,
    invite_epoch,
    invite_hints,
    invite_mac_key,
    invite_topic,
    open_epoch_key,
    open_invite_grant,
    open_join_request,
    open_relay_grant,
    open_welcome,
    seal_epoch_key,
    seal_invite_grant,
    seal_join_request,
    seal_refusal,
    seal_relay_grant,
    seal_welcome,
)
from kith.sync.kinds.keys import MAX_SEALED_PER_OP, invite_id, kept_epoch
from kith.sync.kinds.membership import member_add_body
from kith.sync.lifecycle import (
    TURN_DELAY_S,
    Ack,
    Action,
    Approve,
    CircleView,
    Close,
    Introduce,
    JoinRequestShown,
    MembershipLifecycle,
    PendingRequest,
    Refuse,
    Rotate,
    Share,
    Welcome,
)
from kith.sync.precheck import check_action
from kith.sync.reports import ReportBook

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle, MemberCircles
    from kith.p2pnet.keyfile import Keystore
    from kith.p2pnet.store import EnvelopeStore
    from kith.sync.ops import SignedOp

log = logging.getLogger("kith.lifecycle")

JOINS_KEY = "joins"
JOIN_REACH_S = 5.0
"""How long `join` tries the invite's addresses before it answers whether any was reachable."""


def _loopback(address: str) -> bool:
    return address.startswith(("/ip4/127.", "/ip6/::1/"))


class Mesh(Protocol):
    """What the lifecycle asks of the node that runs it (`p2pnet.node.Node` is one): the
    topics it serves, the envelopes it accepts and folds, the peers it reaches."""

    def serve_topic_nowait(self, topic: bytes) -> None: ...
    async def serve_topic(self, topic: bytes) -> None: ...
    def drop_topic(self, topic: bytes) -> None: ...
    def topic_size(self, topic: bytes) -> int: ...
    def publish_nowait(self, envelope: Envelope) -> None: ...
    async def accept(
        self, topic: bytes, envelopes: list[Envelope], source: str, *, via_gossip: bool = False
    ) -> AcceptResult: ...
    def fold_stored(self, topic: bytes, envelopes: list[Envelope]) -> None: ...
    def fold_held(self, circle: Circle) -> None: ...
    async def connect(self, address: str, *, also: Sequence[str] = (), timeout: float = 10.0) -> str: ...
    def request_sync(self) -> None: ...
    def peer_count(self) -> int: ...
    def listen_addresses(self) -> list[str]: ...


"""Push an event to the control API's clients (`Node.emit`)."""


class Lifecycle:
    """Carries out `sync.lifecycle`'s decisions for one member's circles. It gets what it
    uses and nothing more: the circles, the envelope store, the gate (to serve a topic's
    keys), the keystore (pending joins, relays), an `emit` for events, a clock, and the
    node as a `Mesh`."""

    def __init__(
        self,
        circles: MemberCircles,
        *,
        store: EnvelopeStore,
        gate: Gate,
        keystore: Keystore,
        mesh: Mesh,
        emit: Emit,
        clock: Callable[[], float],
        private_delay_s: float,
    ) -> None:
        self.circles = circles
        self.store = store
        self.gate = gate
        self.keystore = keystore
        self.mesh = mesh
        self.emit = emit
        self.clock = clock
        self.private_delay_s = private_delay_s
        self.decisions = MembershipLifecycle(circles.identity.member_id)
        self.wake = trio.Event()
        self._deferred: list[tuple[Action, bool]] = []
        """Actions (and their ``quiet``) put off while another task held their circle's
        author turn; `run` carries them out in that turn."""
        self._epochs_folded: dict[bytes, set[bytes]] = {}
        """Per circle, the epochs whose stored envelopes have been folded with their key."""
        self.invite_topics: dict[bytes, tuple[bytes, bytes]] = {}
        """Invite topics we serve as a member: topic -> (circle id, invite id)."""
        self._closed_at: dict[bytes, float] = {}
        """Invite topic -> when we first saw its invite used up or expired (grace period)."""
        self._join_codes: dict[bytes, InviteCode] = {}
        """Our own pending joins' codes, by invite topic."""
        self.alloc = AllocationService(
            circles,
            keystore=keystore,
            clock=clock,
            send=self.send,
            wake=self.wake_soon,
            private_delay_s=private_delay_s,
        )
        """Asks to the fund under the charter's allocation rules (`p2pnet.allocation`)."""
        self.private = PrivateRequests(
            circles,
            keystore=keystore,
            emit=emit,
            clock=clock,
            send=self.send,
            wake=self.wake_soon,
            private_delay_s=private_delay_s,
            alloc=self.alloc,
        )
        """Private requests, check-ins and reports to organizers (`p2pnet.private_requests`)."""

    # The names the control API (p2pnet/api.py) and the node use for the private parts.

    @property
    def private_checkins(self) -> dict[bytes, dict[bytes, dict[str, Any]]]:
        return self.private.checkins

    @property
    def reports(self) -> dict[bytes, ReportBook]:
        return self.private.reports

    def private_message(self, circle: Circle, kind: str, body: dict[str, Any]) -> bytes:
        return self.private.send_to_organizers(circle, kind, body)

    def report_book(self, circle: Circle) -> ReportBook:
        return self.private.report_book(circle)

    def open_private_item(self, private: dict[str, Any]) -> dict[str, Any] | None:
        return self.private.open_item(private)

    async def rotate_first(self, circle: Circle) -> None:
        """We just removed someone: rotate the key now, in the circle's author turn
        (`Decisions.rotate_first`)."""
        await self._in_turn(circle, lambda: self.carry_out(self.decisions.rotate_first(self.view(circle))))

    def wake_soon(self) -> None:
        """Look at the circles' duties at once rather than at the next tick."""
        self.wake.set()

    @property
    def me(self) -> bytes:
        return self.circles.identity.member_id

    def joins(self) -> dict[bytes, dict[str, Any]]:
        return self.keystore.data.extra.setdefault(JOINS_KEY, {})

    def view(self, circle: Circle) -> CircleView:
        return CircleView(circle.id, circle.replica.state, frozenset(circle.keys.epochs))

    def carry_out(self, actions: list[Action], *, quiet: bool = False) -> None:
        """Do what the decisions say (``quiet``: replaying stored requests, send no refusals)."""
        for action in actions:
            circle = self.circles.circles.get(action.circle)
            if circle is None:
                continue
            if self.circles.busy(circle):
                # An action in this circle is writing its ops in a worker thread: authoring
                # now would build on the chain head it is about to move. `run` does it next.
                self._deferred.append((action, quiet))
                self.wake.set()
                continue
            try:
                if isinstance(action, Approve):
                    self.approve(circle, action.request)
                elif isinstance(action, Welcome):
                    if not quiet:
                        history = circle.replica.state.info["charter"].history
                        self.send(circle, self._welcome(circle, action.request, history))
                elif isinstance(action, Refuse):
                    if not quiet:
                        self._refuse(circle, action.request, action.reason)
                elif isinstance(action, JoinRequestShown):
                    card = action.request.card
                    self.emit(
                        "join_request", {"circle": circle.id.hex(), "member": card.member_id.hex(), "name": card.name}
                    )
                elif isinstance(action, Rotate):
                    log.info("rotating the key of circle %s: %s", circle.id.hex()[:8], action.why)
                    self.rotate(circle)
                elif isinstance(action, Share):
                    self.share(circle, action.epoch, list(action.members))
                elif isinstance(action, Ack):
                    self._acknowledge(circle, action.epochs)
                elif isinstance(action, Introduce):
                    self._introduce(circle)
                elif isinstance(action, Close):
                    self._close(circle, action.proposals)
            except UsageError as exc:
                log.info("circle %s: %s", circle.id.hex()[:8], exc)

    # --- start-up -----------------------------------------------------------------

    def restore(self) -> None:
        """Serve pending joins' topics and re-read join requests and welcomes we stored."""
        store = self.store
        for topic in list(self.joins()):
            code = self._join_code(topic)
            if code is None:
                del self.joins()[topic]  # a join from an older kith: its code no longer works
                continue
            self.gate.add_key(topic, code.epoch, code.mac_key, invite_hints(code.secret))
        for topic in list(self.joins()):
            for data in store.by_kind(topic, Kind.WELCOME):
                self.on_marker(topic, Envelope.decode(data), Kind.WELCOME)
        for circle in self.circles.circles.values():
            # Opening the circle folded everything its keys open; keys installed from now
            # on bring the stored envelopes of their epoch with them (`install_keys`).
            self._epochs_folded[circle.id] = set(circle.keys.epochs)
            self.catch_up_keys(circle)
            self.follow_invites(circle)
            for topic, (circle_id, _ref) in list(self.invite_topics.items()):
                if circle_id == circle.id:
                    for data in store.by_kind(topic, Kind.JOIN):
                        self.on_marker(topic, Envelope.decode(data), Kind.JOIN, quiet=True)
            for topic in circle.topics():
                for data in store.by_kind(topic, Kind.PRIVATE):
                    self.on_marker(topic, Envelope.decode(data), Kind.PRIVATE)

    # --- what a member stores -----------------------------------------------------

    def admit(self, envelope: Envelope, kind: Kind) -> Verdict:
        """The gate's last step on a member's node (`p2pnet.gate.Gate.admit`): open what we
        can before it is stored, so authentic junk (made with a relay key or an invite's
        capability, which others hold too) is refused, and keep within quotas what we
        cannot open. ``kind`` is what the nonce's hint says (`Gate.kind_of`)."""
        topic = envelope.topic
        circle = self.circles.by_topic.get(topic)
        if circle is not None:
            if kind is Kind.OP:
                key = circle.keys.epochs.get(envelope.epoch)
                if key is None:  # the gate lets in only the topic's own epoch
                    return Verdict.REJECT
                try:
                    open_envelope(envelope, key)
                except RemoteProtocolError:
                    return Verdict.JUNK
                return Verdict.ACCEPT
            if kind is Kind.GRANT:
                return Verdict.ACCEPT if self._grant_opens(circle, envelope) else Verdict.JUNK
            if kind is Kind.PRIVATE:
                return Verdict.FULL if self.private.over_quota(circle, envelope) else Verdict.ACCEPT
            return Verdict.JUNK  # join requests and welcomes travel on invite topics
        secret = self._invite_secret(topic)
        if secret is None:
            return Verdict.ACCEPT  # not ours to judge (the gate serves it for a reason)
        if kind is Kind.JOIN:
            try:
                open_join_request(envelope, secret)
            except RemoteProtocolError:
                return Verdict.JUNK
        elif kind is not Kind.WELCOME:
            return Verdict.JUNK  # an invite's capability authenticates nothing else
        if self.mesh.topic_size(topic) + len(envelope.data) > INVITE_TOPIC_QUOTA:
            return Verdict.FULL
        return Verdict.ACCEPT

    def _grant_opens(self, circle: Circle, envelope: Envelope) -> bool:
        """A grant travels on the topic of the epoch whose keys seal and sign it."""
        epoch = circle.topics().get(envelope.topic)
        if epoch is None:
            return False
        key = circle.keys.epochs[epoch]
        for opener in (open_relay_grant, open_invite_grant):
            try:
                opener(envelope, relay_key(key), grant_signing_keypair(key)[0])
            except RemoteProtocolError:
                continue
            return True
        return False

    def _invite_secret(self, topic: bytes) -> bytes | None:
        served = self.invite_topics.get(topic)
        if served is not None:
            circle = self.circles.circles.get(served[0])
            invite = circle.replica.state.invites.get(served[1]) if circle is not None else None
            return invite.secret if invite is not None else None
        code = self._join_code(topic)
        return code.secret if code is not None else None

    def _join_code(self, topic: bytes) -> InviteCode | None:
        code = self._join_codes.get(topic)
        entry = self.joins().get(topic)
        if code is None and entry is not None:
            try:
                code = self._join_codes[topic] = InviteCode.decode(entry["code"])
            except RemoteProtocolError:
                return None
        return code

    # --- invite topics -------------------------------------------------------------

    def follow_invites(self, circle: Circle) -> None:
        """Serve the topics of the circle's open invites (and of those closed less than a
        grace period ago); drop the others, with what they hold."""
        state = circle.replica.state
        now = self.clock()
        wanted: dict[bytes, tuple[bytes, bytes]] = {}
        if self.me in state.members:
            for ref, invite in state.invites.items():
                topic = invite_topic(invite.secret)
                if invite.revoked_by is not None:
                    continue
                closed = invite.used >= invite.uses or (invite.expires is not None and now > invite.expires)
                if closed and now - self._closed_at.setdefault(topic, now) > INVITE_GRACE_S:
                    continue
                wanted[topic] = (ref, invite.secret)
        for topic, (ref, secret) in wanted.items():
            if topic not in self.invite_topics:
                self.invite_topics[topic] = (circle.id, ref)
                mac_key = invite_mac_key(secret)
                self.gate.add_key(topic, invite_epoch(mac_key), mac_key, invite_hints(secret))
                self.mesh.serve_topic_nowait(topic)
        for topic, (circle_id, _ref) in list(self.invite_topics.items()):
            if circle_id == circle.id and topic not in wanted:
                del self.invite_topics[topic]
                self.mesh.drop_topic(topic)

    # --- invites ------------------------------------------------------------------

    def create_invite(self, circle: Circle, *, uses: int, expires_s: float | None) -> InviteCode:
        secret = self.circles.rand(32)
        expires = None if expires_s is None else int(self.clock() + expires_s)
        body = {"invite": invite_id(secret), "secret": secret, "uses": uses, "expires": expires}
        check_action(circle.replica.state, self.circles.identity.member_id, "invite.create", body)
        _envelope, result = self.circles.author(circle, "invite.create", body)  # stored and offered to peers
        rejected = dict(result.rejected)
        if result.applied and result.applied[0].id in rejected:
            raise UsageError(f"cannot invite: {rejected[result.applied[0].id]}")
        self.follow_invites(circle)
        # Relays serve the invite's topic too, so a join request and its welcome can wait
        # there for whoever is offline.
        now = int(self.clock())
        until = min(expires if expires is not None else now + MAX_INVITE_GRANT_S, now + MAX_INVITE_GRANT_S)
        self._invite_grant(circle, secret, until + INVITE_GRACE_S)
        return InviteCode(secret, circle_check(circle.id, secret), tuple(self._addresses(circle)), expires)

    def invite_closed(self, circle: Circle, invite_ref: bytes) -> None:
        """An invite was revoked: stop serving its topic, and tell the relays to stop."""
        invite = circle.replica.state.invites.get(invite_ref)
        if invite is not None:
            self._invite_grant(circle, invite.secret, 0)
        self.follow_invites(circle)

    def _invite_grant(self, circle: Circle, secret: bytes, until: int) -> None:
        grant = seal_invite_grant(
            epoch_key=circle.keys.current_key, secret=secret, until=until,
            ts=int(self.clock()), rand=self.circles.rand,
        )  # fmt: skip
        self.send(circle, grant)

    def _addresses(self, circle: Circle) -> list[str]:
        """Where a newcomer can reach the circle: its relays first, then this node. This
        node's loopback addresses (a private node has only those) reach only this machine:
        they go in only when there is no relay to give, so a newcomer elsewhere never dials
        an address that would land on its own machine."""
        addresses = list(circle.replica.state.relays) + list(self.keystore.data.relays)
        mine = self.mesh.listen_addresses()
        addresses += [a for a in mine if not _loopback(a)]
        if not addresses:
            addresses += [a for a in mine if _loopback(a)]
        unique = list(dict.fromkeys(addresses))
        return unique[:4]

    # --- joining ------------------------------------------------------------------

    async def join(self, text: str) -> dict[str, Any]:
        code = InviteCode.decode(text)
        now = self.clock()
        if code.expires is not None and now > code.expires:
            raise UsageError("this invite has expired; ask the person who invited you for a new one")
        for circle in self.circles.circles.values():
            if circle_check(circle.id, code.secret) == code.check and self.me in circle.replica.state.members:
                raise UsageError("you are already a member of this circle")
        request, nonce = seal_join_request(code, self.circles.identity, ts=int(now), rand=self.circles.rand)
        self.joins()[code.topic] = {"code": code.encode(), "requested": int(now), "refused": None, "request": nonce}
        self._join_codes[code.topic] = code
        for address in code.addresses:
            if address not in self.keystore.data.relays:
                self.keystore.data.relays.append(address)
        self.keystore.save()
        self.gate.add_key(code.topic, code.epoch, code.mac_key, invite_hints(code.secret))
        await self.mesh.serve_topic(code.topic)
        reached, unreached = await self._reach(list(code.addresses))
        await self.mesh.accept(code.topic, [request], "self")
        self.mesh.publish_nowait(request)
        return {
            "status": "pending",
            "topic": code.topic.hex(),
            "invite": code.invite_id.hex(),
            "reached": reached,
            "unreached": unreached,
            "peers": self.mesh.peer_count(),
        }

    async def _reach(self, addresses: list[str]) -> tuple[list[str], list[dict[str, str]]]:
        """Try every address an invite names (one dial per peer, all at once) for at most
        `JOIN_REACH_S`: which answered, and why the others did not. The node's dialer keeps
        trying those that did not (the keystore lists them), so a request waits, not fails."""
        by_peer: dict[str, list[str]] = {}
        for address in addresses:
            by_peer.setdefault(address.rsplit("/p2p/", 1)[-1], []).append(address)
        reached: list[str] = []
        errors: dict[str, str] = {}

        async def dial(group: list[str]) -> None:
            try:
                await self.mesh.connect(group[0], also=group[1:], timeout=JOIN_REACH_S)
            except (NetError, UsageError) as exc:
                for address in group:
                    errors[address] = str(exc)
            else:
                reached.extend(group)

        with trio.move_on_after(JOIN_REACH_S):
            async with trio.open_nursery() as nursery:
                for group in by_peer.values():
                    nursery.start_soon(dial, group)
        unreached = [{"address": a, "error": errors.get(a, "no answer in time")} for a in addresses if a not in reached]
        return reached, unreached

    def pending_joins(self) -> list[dict[str, Any]]:
        result = []
        for topic, entry in self.joins().items():
            code = self._join_code(topic)
            if code is None:
                continue
            result.append(
                {
                    "topic": topic.hex(),
                    "invite": code.invite_id.hex(),
                    "requested": entry["requested"],
                    "refused": entry.get("refused"),
                }
            )
        return result

    def on_marker(self, topic: bytes, envelope: Envelope, kind: Kind, *, quiet: bool = False) -> None:
        """A welcome, join request or private message was stored: act on it if it concerns us."""
        if kind is Kind.WELCOME and topic in self.joins():
            self._on_welcome(topic, envelope)
        elif kind is Kind.JOIN and topic in self.invite_topics:
            circle = self.circles.circles.get(self.invite_topics[topic][0])
            if circle is not None:
                self._on_join_request(circle, envelope, quiet=quiet)
        elif kind is Kind.PRIVATE and topic in self.circles.by_topic:
            self.private.on_envelope(self.circles.by_topic[topic], envelope)

    def _on_welcome(self, topic: bytes, envelope: Envelope) -> None:
        entry = self.joins()[topic]
        nonce, code = entry.get("request"), self._join_code(topic)
        if type(nonce) is not bytes or code is None:
            return  # a join from an older kith: it cannot be answered; join again
        try:
            welcome = open_welcome(envelope, self.circles.identity, nonce, code)
        except RemoteProtocolError:
            return  # someone else's welcome, one for an earlier request of ours, or damaged
        if welcome.refused is not None:
            entry["refused"] = welcome.refused
            self.keystore.save()
            self.emit("join_refused", {"topic": topic.hex(), "reason": welcome.refused})
            return
        returning = welcome.circle in self.circles.circles
        circle = self.circles.join_with_keys(
            welcome.circle, welcome.name or "circle", welcome.epochs, welcome.current, welcome.contents
        )
        if not returning:
            # Opening the circle just folded what the store holds under these keys.
            self._epochs_folded[circle.id] = set(circle.keys.epochs)
        del self.joins()[topic]
        self._join_codes.pop(topic, None)
        for address in welcome.relays:
            if address not in self.keystore.data.relays:
                self.keystore.data.relays.append(address)
        self.keystore.save()
        self.install_keys(circle)  # serves the circle's epoch topics: gossip and sync them
        # The invite's topic has done its work for us, but members follow the topics of
        # their circle's open invites: dropping it here and serving it again a moment later
        # showed our peers an unsubscribe then a GRAFT within seconds, which py-libp2p
        # punishes as a GRAFT flood. Keep it when the circle (as folded so far) wants it.
        self.follow_invites(circle)
        if topic not in self.invite_topics:
            self.mesh.drop_topic(topic)
        self.emit("joined", {"circle": circle.id.hex(), "name": welcome.name})
        self.mesh.request_sync()

    def install_keys(self, circle: Circle) -> None:
        """Serve the topic of every epoch we hold, and fold what the store has under a key
        that has just arrived.

        A node serves an epoch's topic only once it holds the key, so what was sealed with
        it comes by reconciliation once the topic is served (`Node.serve_topic_nowait`
        asks every peer). The store may still hold envelopes of an epoch whose key is new
        here (someone returning to a circle): folding is idempotent, so ops already in the
        state are only duplicates."""
        seen = self._epochs_folded.setdefault(circle.id, set())
        self.circles.index_topics(circle)
        for epoch, key in circle.keys.epochs.items():
            rk = relay_key(key)
            topic = epoch_topic(rk)
            if not self.gate.serves(topic):
                self.gate.add_key(topic, epoch, rk, epoch_hints(key))
                self.mesh.serve_topic_nowait(topic)
            if epoch not in seen:
                seen.add(epoch)
                stored = [Envelope.decode(data) for data in self.store.iter_topic(topic)]
                if stored:
                    self.mesh.fold_stored(topic, stored)

    # --- approving ----------------------------------------------------------------

    def _on_join_request(self, circle: Circle, envelope: Envelope, *, quiet: bool) -> None:
        self.carry_out(self.decisions.join_request(self.view(circle), envelope, self.clock()), quiet=quiet)

    def pending_requests(self, circle: Circle) -> list[PendingRequest]:
        return self.decisions.pending_requests(self.view(circle))

    def _refuse(self, circle: Circle, request: JoinRequest, reason: str) -> None:
        invite = circle.replica.state.invites.get(request.invite or b"")
        if request.request is None or invite is None:
            return
        refusal = seal_refusal(
            request.card,
            refuser=self.circles.identity,
            request=request.request,
            reason=reason,
            secret=invite.secret,
            ts=int(self.clock()),
            rand=self.circles.rand,
        )
        self.send(circle, refusal)

    def approve(self, circle: Circle, request: JoinRequest, *, vouch: str | None = None) -> SignedOp:
        """Add the newcomer (member.add with their card and request nonce) and send them the keys."""
        state = circle.replica.state
        if request.request is not None and request.request in state.admissions:
            raise UsageError("that join request was already used to let someone in; ask them for a new one")
        history = state.info["charter"].history
        if not history:
            # A fresh key first, so the newcomer cannot read what was said before they came.
            self.rotate(circle)
        card_bytes = request.card.to_bytes()
        body = member_add_body(card_bytes, vouch=vouch, invite=request.invite, request=request.request)
        _envelope, result = self.circles.author(circle, "member.add", body)
        signed = result.applied[0]
        reason = dict(result.rejected).get(signed.id)
        if reason is not None:
            raise UsageError(f"the circle refused to add them: {reason}")
        self.decisions.approved(circle.id, request.card.member_id)
        if request.request is not None:
            self.send(circle, self._welcome(circle, request, history))
        self.emit("member_added", {"circle": circle.id.hex(), "member": request.card.member_id.hex()})
        return signed

    def _welcome(self, circle: Circle, request: JoinRequest, history: bool) -> Envelope:
        """Every epoch key we hold of the epochs the fold knows (the state is a fold of every
        op; what we lack, organizers share once the newcomer's acknowledgement shows it
        missing); content keys only as the charter allows: the current one, or all of them
        when newcomers may read the past."""
        if request.request is None:
            raise LocalProtocolError("a welcome for a join request that was never read")
        current_content = circle.keys.current_content_key
        if current_content is None:
            raise LocalProtocolError("a welcome from a circle whose keys hold no content key")
        # Only epochs the fold knows: the node installs every key sealed to it, even from a
        # rotation the fold refuses, and someone removed who still holds an old key can seal
        # any number of those to us. A welcome holds at most `MAX_WELCOME_EPOCHS`.
        known = circle.replica.state.epochs
        epochs = {e: k for e, k in circle.keys.epochs.items() if e in known or e == circle.keys.current}
        contents = (
            {e: k for e, k in circle.keys.contents.items() if e in epochs}
            if history
            else {circle.keys.current: current_content}
        )
        info = circle.replica.state.info.get("circle")
        invite = circle.replica.state.invites[request.invite or b""]
        return seal_welcome(
            request.card,
            approver=self.circles.identity,
            request=request.request,
            circle=circle.id,
            name=info.name if info else circle.keys.label,
            epochs=epochs,
            contents=contents,
            current=circle.keys.current,
            relays=self._addresses(circle),
            secret=invite.secret,
            ts=int(self.clock()),
            rand=self.circles.rand,
        )

    def add_by_card(self, circle: Circle, card_bytes: bytes, *, vouch: str | None) -> SignedOp:
        from kith.identity.keys import IdentityCard

        card = IdentityCard.from_bytes(card_bytes)
        return self.approve(circle, JoinRequest(card, None, b""), vouch=vouch)

    def send(self, circle: Circle, envelope: Envelope) -> None:
        """Store (durably, now, with its kind) and gossip an envelope we made."""
        kind = self.gate.kind_of(envelope)
        self.store.add_batch([envelope], {envelope.id: kind} if kind is not Kind.OP else None)
        self.mesh.publish_nowait(envelope)

    # --- keys ---------------------------------------------------------------------

    def after_fold(self, circle: Circle, ops: list[SignedOp]) -> None:
        """Install keys sealed to us, follow the current epoch, acknowledge what we installed,
        and look at what the new ops make due."""
        changed = False
        for signed in ops:
            kind = signed.op.kind
            if kind in ("key.rotate", "key.share"):
                # Even from a rotation the fold rejected (say it was sealed to someone removed
                # at the same time): its author sealed ops with it before learning that, and
                # those ops belong to the circle. Holding a key never changes the state.
                changed = self._open_key(circle, signed) or changed
            elif kind == "member.add" and signed.op.body.get("member") == self.me:
                changed = True
        if self._follow_current(circle) or changed:
            self.circles.save_keys(circle)
            self.install_keys(circle)
        self.follow_invites(circle)
        view = self.view(circle)
        self.carry_out(self.decisions.folded(view, {signed.op.kind for signed in ops}, self.clock()))
        self.carry_out(self.decisions.keys_installed(view))
        self.wake.set()

    def _open_key(self, circle: Circle, signed: SignedOp) -> bool:
        sealed = signed.op.body.get("sealed")
        epoch = signed.op.body.get("epoch")
        if type(sealed) is not dict or self.me not in sealed or type(epoch) is not bytes:
            return False
        if epoch in circle.keys.contents:
            return False
        try:
            key, content = open_epoch_key(sealed[self.me], self.circles.identity, epoch)
        except RemoteProtocolError:
            log.warning("a key sealed to us in circle %s does not open", circle.id.hex()[:8])
            self.decisions.key_unusable(circle.id, epoch)
            return False
        if content == NO_CONTENT_KEY and epoch in circle.keys.epochs:
            return False
        circle.keys.add_epoch(epoch, key, make_current=False, content=None if content == NO_CONTENT_KEY else content)
        return True

    def catch_up_keys(self, circle: Circle) -> None:
        """Install keys offered to us that we do not hold: the node stopped (or a write failed)
        between storing a key op and saving the keystore, and folding it again on start does
        not run `after_fold`."""
        state = circle.replica.state
        if any(self.me in offers and epoch not in circle.keys.epochs for epoch, offers in state.offers.items()):
            self.after_fold(circle, [op for op in circle.replica.ops() if op.op.kind in ("key.rotate", "key.share")])
        elif self._follow_current(circle):
            self.circles.save_keys(circle)

    def _follow_current(self, circle: Circle) -> bool:
        current = circle.replica.state.info.get("epoch")
        if current is not None and current in circle.keys.epochs and circle.keys.current != current:
            circle.keys.current = current
            return True
        return False

    def _acknowledge(self, circle: Circle, epochs: tuple[bytes, ...]) -> None:
        """Tell the circle we hold these keys (``key.ack``)."""
        self.circles.author(circle, "key.ack", {"epochs": list(epochs)})

    def _introduce(self, circle: Circle) -> None:
        """Sign our profile with the name chosen at ``kith init`` (the placeholder "member",
        from an init without a name, would only hide the id that tells members apart)."""
        name = self.circles.identity.name
        if name == DEFAULT_NAME:
            return
        body: dict[str, Any] = {"display_name": name, "pronouns": None, "skills": []}
        self.circles.author(circle, "profile.set", body)

    def _close(self, circle: Circle, proposals: tuple[bytes, ...]) -> None:
        """Close proposals whose closing time has passed (the op claims our clock's time)."""
        items = [("proposal.close", {"proposal": proposal_id}) for proposal_id in proposals]
        self.circles.author_many(circle, items)
        log.info("closed %d proposal(s) of circle %s at their closing time", len(proposals), circle.id.hex()[:8])

    def maintain(self, circle: Circle) -> None:
        """Carry out the key duties that are due; post private requests waiting for us; fold
        the closes held until their time; close proposals whose time has come."""
        self.mesh.fold_held(circle)
        state = circle.replica.state
        self.follow_invites(circle)
        if self.me in state.members and not state.info.get("rotation_due"):
            self.private.serve_proxies(circle)
        self.carry_out(self.decisions.tick(self.view(circle), self.clock()))
        self.alloc.maintain(circle)

    def rotate(self, circle: Circle) -> bytes:
        """A new epoch key, saved first, sealed to every other member, announced under the
        newest key we hold, with a relay grant for relays."""
        state = circle.replica.state
        previous = state.info["epoch"]
        new_key, new_content = self.circles.rand(32), self.circles.rand(32)
        new_epoch = epoch_id(new_key)
        circle.keys.add_epoch(new_epoch, new_key, make_current=False, content=new_content)
        self.circles.save_keys(circle)  # durable before anyone can depend on it
        self.install_keys(circle)  # serve the new epoch's topic before anything is sealed there
        recipients = [m for m in sorted(state.members) if m != self.me and m in state.cards]
        sealed = {m: seal_epoch_key(state.cards[m], new_key, new_content) for m in recipients}
        chunks = [
            dict(list(sealed.items())[i : i + MAX_SEALED_PER_OP]) for i in range(0, len(sealed), MAX_SEALED_PER_OP)
        ]
        items: list[tuple[str, dict[str, Any]]] = [
            ("key.rotate", {"epoch": new_epoch, "previous": previous, "sealed": chunks[0] if chunks else {}})
        ]
        items += [("key.share", {"epoch": new_epoch, "sealed": chunk}) for chunk in chunks[1:]]
        self.circles.author_many(circle, items)
        # Relays learn the new relay key from one they know (the previous epoch's, or, when
        # that key was junk and we never held it, the newest we hold), before anyone needs it.
        held = previous if previous in circle.keys.epochs else self._newest_held(circle, exclude=new_epoch)
        grant = seal_relay_grant(
            previous_key=circle.keys.epochs[held],
            epoch=new_epoch,
            epoch_key=new_key,
            ts=int(self.clock()),
            rand=self.circles.rand,
        )
        self.send(circle, grant)
        if self._follow_current(circle):
            self.circles.save_keys(circle)
        log.info("rotated the key of circle %s for %d members", circle.id.hex()[:8], len(recipients))
        self.emit("rotated", {"circle": circle.id.hex(), "epoch": new_epoch.hex(), "members": len(recipients)})
        return new_epoch

    def _newest_held(self, circle: Circle, *, exclude: bytes) -> bytes:
        state = circle.replica.state
        epochs = state.epochs
        # (Never a kept epoch, `kept_epoch`: whoever was removed holds its key.)
        held = [e for e in circle.keys.epochs if e != exclude and e in epochs and not kept_epoch(state, e)]
        if not held:
            return circle.keys.current
        return max(held, key=lambda e: (epochs[e].lamport, epochs[e].op))

    def share(self, circle: Circle, epoch: bytes, members: list[bytes]) -> None:
        """Hand ``epoch`` to members who lack it: with its content key when they may read what
        was said in it (it is current, it began after they joined, or the circle shares its
        history), else the epoch key alone (`NO_CONTENT_KEY`)."""
        state = circle.replica.state
        key, content = circle.keys.epochs[epoch], circle.keys.contents.get(epoch)
        sealed: dict[bytes | None, dict[bytes, bytes]] = {}
        for member in members:
            if member not in state.cards:
                continue
            readable = (
                epoch == state.info.get("epoch")
                or state.info["charter"].history
                or _began_after_joining(state, epoch, member)
            )
            if readable and content is None:
                continue  # we cannot pass on a content key we do not have; another organizer will
            content_key = content if readable and content is not None else NO_CONTENT_KEY
            # Sealed with the newest epoch they hold: they cannot open one sealed with the
            # current epoch if that is the key they lack.
            held = [
                e
                for e, holders in state.holders.items()
                if member in holders and e in circle.keys.epochs and not kept_epoch(state, e)
            ]
            seal_with = max(held, key=lambda e: (state.epochs[e].lamport, state.epochs[e].op), default=None)
            box = seal_epoch_key(state.cards[member], key, content_key)
            sealed.setdefault(seal_with, {})[member] = box
        for seal_with, boxes in sealed.items():
            items = [
                ("key.share", {"epoch": epoch, "sealed": dict(list(boxes.items())[i : i + MAX_SEALED_PER_OP])})
                for i in range(0, len(boxes), MAX_SEALED_PER_OP)
            ]
            self.circles.author_many(circle, items, seal_epoch=seal_with)

    async def run(self) -> None:
        """Check duties when something changed, and every few seconds (turn delays), each
        circle's in its author turn (`Circle.authoring`): what they author waits for an
        action whose write is in a worker thread, rather than forking our chain."""
        while True:
            with trio.move_on_after(TURN_DELAY_S / 2):
                await self.wake.wait()
            self.wake = trio.Event()
            deferred, self._deferred = self._deferred, []
            for action, quiet in deferred:
                circle = self.circles.circles.get(action.circle)
                if circle is not None:
                    await self._in_turn(circle, partial(self.carry_out, [action], quiet=quiet))
            for circle in list(self.circles.circles.values()):
                await self._in_turn(circle, partial(self.maintain, circle))

    async def _in_turn(self, circle: Circle, step: Callable[[], None]) -> None:
        """Run a step that may author, in the circle's author turn; a failure is logged."""
        async with circle.authoring:
            try:
                step()
            except (UsageError, RemoteProtocolError, StorageError) as exc:
                log.warning("key maintenance of circle %s failed: %s", circle.id.hex()[:8], exc)


def _began_after_joining(state: Any, epoch: bytes, member: bytes) -> bool:
    """Did ``epoch`` begin after ``member`` (last) joined, in fold order?"""
    record, joined = state.epochs.get(epoch), state.members.get(member)
    return (
        record is not None
        and joined is not None
        and (record.lamport, record.op)
        > (
            joined.joined_lamport,
            joined.joined_op,
        )
    )
