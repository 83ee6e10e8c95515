"""The membership lifecycle of one member's node, as decisions: events in, actions out.

Theory of operation
-------------------
Around the fold, a member's node has duties the fold cannot perform (they need keys and a
clock): let newcomers in, refuse dead invites, replace the key when someone leaves or a key
turns out to be junk, hand the key to members who lack it, acknowledge keys it received.
`MembershipLifecycle` decides them; the node (`p2pnet.lifecycle`) carries them out
(sealing, signing, publishing) and reports back. No I/O, no clock: ``now`` is passed in.

Events:

* `join_request`: a join request opened with one of the circle's invite secrets (or one no
  invite opens yet: it is kept, boundedly, and looked at again when invites arrive);
* `folded`: ops entered the circle (new invites, removals, rotations...);
* `keys_installed` / `key_unusable`: the node opened (or could not open) a key sealed to it;
* `tick`: time passed (turn delays and grace periods run on it).

Actions are frozen dataclasses (`Approve`, `Refuse`, `Rotate`, `Share`, `Ack`,
`Introduce`, `JoinRequestShown`, `Close`). Organizers take turns: for each duty the organizers are ordered by a
hash of the current epoch and their id; the first acts at once, the next `turn_delay` later
if the duty is still undone, and so on, so they rarely act twice, and when they do the fold
converges anyway.

What the decisions rest on:

* a join request admits once: its nonce is recorded by the ``member.add`` that answers it,
  so a request stored before a removal is never answered again (the fold refuses it too);
* a member holds a key once they acknowledged it (``key.ack``); members who have not, for
  ``ack_grace`` seconds, are sent it again, sealed with a key they hold;
* an organizer who cannot open the current key (its box is junk, or nobody sends it within
  ``repair_after`` seconds) replaces it, so a bad rotation cannot freeze the circle;
* a proposal whose closing time has passed is closed (`Close`: a ``proposal.close``) by a
  member's node without anyone acting: members take turns as organizers do (ordered by a
  hash of the proposal and their id, at most `MAX_CLOSE_RANK` turns apart), so usually one
  closes it, and a duplicate is only a rejected op. Whether it is still due is read from
  the state (an open proposal past its time), so a close that could not be signed (the key
  was being replaced) is tried again at the next tick.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from kith.identity.crypto import blake2b
from kith.identity.errors import RemoteProtocolError
from kith.sync.envelope import Envelope
from kith.sync.invites import JoinRequest, open_join_request
from kith.sync.kinds.common import has_role
from kith.sync.kinds.keys import members_missing_key
from kith.sync.kinds.records import ORGANIZER
from kith.sync.opkind import OpKind
from kith.sync.state import CircleState

TURN_DELAY_S = 4.0
ACK_GRACE_S = 10.0
"""How long a member may take to acknowledge a key before it is sent to them again."""
REPAIR_AFTER_S = 30.0
"""How long an organizer waits for the current key before replacing it."""
MAX_UNMATCHED = 256
"""Join requests kept per circle while no invite of it opens them (one may arrive later)."""


# --- what the node needs to know about a circle -------------------------------------


@dataclass(frozen=True)
class CircleView:
    """One circle as the lifecycle sees it: its folded state and the epochs whose keys we hold."""

    circle: bytes
    state: CircleState
    held: frozenset[bytes]


# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Approve:
    """Add the newcomer (``member.add`` naming the request) and send them the welcome."""

    circle: bytes
    request: JoinRequest


@dataclass(frozen=True)
class Welcome:
    """Send the keys to someone who is a member already but has never acted in the circle
    (added by their card, so nothing reached them). A join request is not signed, so anyone
    with a code can name any card: the welcome is sealed to that card, so only its holder
    can open it."""

    circle: bytes
    request: JoinRequest


@dataclass(frozen=True)
class Refuse:
    """Tell the newcomer why their invite does not let them in."""

    circle: bytes
    request: JoinRequest
    reason: str


@dataclass(frozen=True)
class Rotate:
    """Make a new epoch key, seal it to every member, announce it."""

    circle: bytes
    why: str


@dataclass(frozen=True)
class Share:
    """Seal an epoch key we hold to members who have not acknowledged it."""

    circle: bytes
    epoch: bytes
    members: tuple[bytes, ...]


@dataclass(frozen=True)
class Ack:
    """Acknowledge keys we installed (``key.ack``)."""

    circle: bytes
    epochs: tuple[bytes, ...]


@dataclass(frozen=True)
class Introduce:
    """We are in a circle with no profile of ours: sign one with the name we chose at
    ``kith init`` (or in the client's welcome), so the circle shows it, not an id."""

    circle: bytes


@dataclass(frozen=True)
class Close:
    """Sign a ``proposal.close`` for each of these proposals: their closing time has passed."""

    circle: bytes
    proposals: tuple[bytes, ...]


@dataclass(frozen=True)
class JoinRequestShown:
    """An organizer's decision is needed: show the request."""

    circle: bytes
    request: JoinRequest


Action = Approve | Welcome | Refuse | Rotate | Share | Ack | Introduce | JoinRequestShown | Close

MAX_CLOSE_RANK = 4
"""A member's node closes a proposal at most this many turns after its closing time."""


# --- the lifecycle --------------------------------------------------------------------


@dataclass(frozen=True)
class PendingRequest:
    """A join request waiting for an organizer, and when it arrived."""

    request: JoinRequest
    received: float


@dataclass
class MembershipLifecycle:
    """The membership duties of the node of member ``me`` (see the module docstring)."""

    me: bytes
    turn_delay: float = TURN_DELAY_S
    ack_grace: float = ACK_GRACE_S
    repair_after: float = REPAIR_AFTER_S
    pending: dict[tuple[bytes, bytes], PendingRequest] = field(default_factory=dict)
    """(circle, newcomer) -> a request waiting for an organizer's approval."""
    _unmatched: dict[bytes, OrderedDict[bytes, Envelope]] = field(default_factory=dict)
    _due_since: dict[tuple[bytes, str], float] = field(default_factory=dict)
    _unusable: dict[bytes, set[bytes]] = field(default_factory=dict)
    """circle -> epochs whose key, sealed to us, did not open."""
    _acked: dict[tuple[bytes, bytes], set[bytes]] = field(default_factory=dict)
    """(circle, the op that began our membership) -> epochs we acknowledged (or asked to), so
    each is acknowledged once per membership: an ack the fold never counted (voided with
    the membership it was sent in) is sent again after we are added again."""
    _introduced: set[bytes] = field(default_factory=set)
    """Circles we signed (or asked to sign) our profile in since the node started."""

    # --- joining ----------------------------------------------------------------------

    def join_request(self, view: CircleView, envelope: Envelope, now: float) -> list[Action]:
        """A join request was stored on the circle's topic."""
        state = view.state
        if self.me not in state.members:
            return []
        for invite_ref, invite in sorted(state.invites.items()):
            try:
                request = open_join_request(envelope, invite.secret)
            except RemoteProtocolError:
                continue
            return self._decide(view, invite_ref, request, now)
        unmatched = self._unmatched.setdefault(view.circle, OrderedDict())
        unmatched[envelope.id] = envelope  # an invite we have not seen yet may open it
        while len(unmatched) > MAX_UNMATCHED:
            unmatched.popitem(last=False)
        return []

    def _decide(self, view: CircleView, invite_ref: bytes, request: JoinRequest, now: float) -> list[Action]:
        state = view.state
        newcomer = request.card.member_id
        invite = state.invites[invite_ref]
        mine = invite.author == self.me
        problem = invite_problem(state, invite_ref, now)
        member = state.members.get(newcomer)
        if member is not None and not member.acked and mine and problem is None:
            # A member who never acted (added by card): nothing could reach them. The keys,
            # sealed to their card (only they can open them), and no new op.
            self.pending.pop((view.circle, newcomer), None)
            return [Welcome(view.circle, request)]
        if member is not None or (request.request is not None and request.request in state.admissions):
            self.pending.pop((view.circle, newcomer), None)
            return []  # in already, or this request already let them in (they may have left since)
        if problem is not None:
            return [Refuse(view.circle, request, problem)] if mine else []
        if mine and self._may_add(state) and not state.info["charter"].confirm_joins:
            self.pending.pop((view.circle, newcomer), None)
            return [Approve(view.circle, request)]
        if has_role(state, self.me, ORGANIZER) and (view.circle, newcomer) not in self.pending:
            self.pending[(view.circle, newcomer)] = PendingRequest(request, now)
            return [JoinRequestShown(view.circle, request)]
        return []

    def _may_add(self, state: CircleState) -> bool:
        return state.info["charter"].members_can_invite or has_role(state, self.me, ORGANIZER)

    def approved(self, circle: bytes, newcomer: bytes) -> None:
        """The node let them in (by itself or on an organizer's word)."""
        self.pending.pop((circle, newcomer), None)

    def pending_requests(self, view: CircleView) -> list[PendingRequest]:
        """Requests waiting for an organizer, of people not in the circle yet."""
        state = view.state
        return [
            pending
            for (circle, member), pending in sorted(self.pending.items())
            if circle == view.circle
            and member not in state.members
            and (pending.request.request is None or pending.request.request not in state.admissions)
        ]

    # --- folding and keys ----------------------------------------------------------------

    def folded(self, view: CircleView, kinds: set[str], now: float) -> list[Action]:
        """Ops of these kinds entered the circle: look again at requests no invite opened."""
        actions: list[Action] = []
        if OpKind.INVITE_CREATE in kinds and self._unmatched.get(view.circle):
            waiting = self._unmatched.pop(view.circle)
            for envelope in waiting.values():
                actions += self.join_request(view, envelope, now)
        return actions

    def keys_installed(self, view: CircleView) -> list[Action]:
        """Acknowledge every key we hold that we have not acknowledged yet (and the fold
        does not already count us as holding)."""
        state = view.state
        if self.me not in state.members:
            return []
        acked = self._acked.setdefault((view.circle, state.members[self.me].joined_op), set())
        wanted = sorted(
            epoch
            for epoch in view.held
            if epoch in state.epochs and epoch not in acked and self.me not in state.holders.get(epoch, {})
        )
        acked.update(wanted)
        self._unusable.get(view.circle, set()).difference_update(view.held)
        # One ack op holds at most 64 epochs (`kith.sync.kinds.keys.MAX_ACKED`).
        actions: list[Action] = [Ack(view.circle, tuple(wanted[i : i + 64])) for i in range(0, len(wanted), 64)]
        if (
            self.me not in state.profiles
            and view.circle not in self._introduced
            and state.info.get("epoch") in view.held
        ):
            self._introduced.add(view.circle)
            actions.append(Introduce(view.circle))
        return actions

    def key_unusable(self, circle: bytes, epoch: bytes) -> None:
        """A key sealed to us for ``epoch`` did not open (junk, or not for us)."""
        self._unusable.setdefault(circle, set()).add(epoch)

    # --- duties ------------------------------------------------------------------------

    def closes_due(self, view: CircleView, now: float) -> list[Action]:
        """Open proposals past their closing time whose turn to close is ours."""
        state = view.state
        if self.me not in state.members:
            return []
        due = []
        for proposal_id in sorted(state.open_proposals):
            closes_at = state.proposals[proposal_id].closes_at
            if now < closes_at:
                continue
            order = sorted(state.members, key=lambda m: blake2b(proposal_id + m, person=b"kith-close", size=8))
            if now - closes_at >= min(order.index(self.me), MAX_CLOSE_RANK) * self.turn_delay:
                due.append(proposal_id)
        return [Close(view.circle, tuple(due))] if due else []

    def tick(self, view: CircleView, now: float) -> list[Action]:
        """Duties that are due: a rotation, a repair of the current key, key shares, closes."""
        return [*self._key_duties(view, now), *self.closes_due(view, now)]

    def _key_duties(self, view: CircleView, now: float) -> list[Action]:
        state = view.state
        current = state.info.get("epoch")
        if self.me not in state.members or current is None:
            return []
        if current not in view.held:
            return self._repair(view, current, now)
        self._done(view.circle, "repair")
        if state.info.get("rotation_due"):
            if self._my_turn(state, view.circle, "rotate", now):
                self._done(view.circle, "rotate")
                return [Rotate(view.circle, "someone left or the key reached someone outside")]
            return []
        self._done(view.circle, "rotate")
        actions: list[Action] = []
        # The current epoch first; then older ones a member lacks (a rotation that did not
        # know them yet, one begun elsewhere while they were let in): without those keys
        # they cannot open what was sealed with them, and their state would diverge.
        for epoch in [current, *sorted(e for e in state.epochs if e != current)]:
            duty = "share:" + epoch.hex()
            missing = tuple(m for m in members_missing_key(state, epoch) if m != self.me)
            if not missing or epoch not in view.held:
                self._done(view.circle, duty)
                continue
            since = self._due_since.setdefault((view.circle, duty), now)
            if now - since >= self.ack_grace and self._my_turn(state, view.circle, duty, now, since + self.ack_grace):
                self._done(view.circle, duty)
                actions.append(Share(view.circle, epoch, missing))
        return actions

    def rotate_first(self, view: CircleView) -> list[Action]:
        """We just removed someone: rotate now, ahead of the organizers' turn order. Until
        the new key is in, no member can seal anything (the removed member holds the old
        one), and the first organizer in the order may be offline or a partition away,
        costing `turn_delay` per absent organizer; the one who removed is online and knew
        first. (If another organizer rotates too before ours reaches them, the fold keeps
        one of the two keys, and both went to every member.)"""
        state = view.state
        current = state.info.get("epoch")
        if not state.info.get("rotation_due") or self.me not in state.members or current not in view.held:
            return []
        self._done(view.circle, "rotate")
        return [Rotate(view.circle, "we removed someone")]

    def _repair(self, view: CircleView, current: bytes, now: float) -> list[Action]:
        """We lack the current key. Wait for a share; an organizer whose box for it was junk,
        or who waited `repair_after`, replaces the key."""
        state = view.state
        if not has_role(state, self.me, ORGANIZER):
            return []
        duty = "repair"
        since = self._due_since.setdefault((view.circle, duty), now)
        junk = current in self._unusable.get(view.circle, set())
        start = since if junk else since + self.repair_after
        if now >= start and self._my_turn(state, view.circle, duty, now, start):
            self._done(view.circle, duty)
            return [Rotate(view.circle, "the current key cannot be opened")]
        return []

    def _done(self, circle: bytes, duty: str) -> None:
        self._due_since.pop((circle, duty), None)

    def _my_turn(self, state: CircleState, circle: bytes, duty: str, now: float, start: float | None = None) -> bool:
        """Organizers take turns: the first in a per-epoch order acts from ``start`` (when
        the duty fell due), the next `turn_delay` later, and so on."""
        organizers = sorted(
            (m for m, member in state.members.items() if ORGANIZER in member.roles),
            key=lambda m: blake2b(state.info.get("epoch", b"") + m, person=b"kith-turn", size=8),
        )
        if self.me not in organizers:
            # Where members may invite, any member may move keys; they go after organizers.
            if not state.info["charter"].members_can_invite:
                return False
            rank = len(organizers) + sorted(state.members).index(self.me)
        else:
            rank = organizers.index(self.me)
        if start is None:
            start = self._due_since.setdefault((circle, duty), now)
        return now - start >= rank * self.turn_delay


def invite_problem(state: CircleState, invite_ref: bytes, now: float) -> str | None:
    """Why an invite cannot let anyone in now, or None."""
    invite = state.invites[invite_ref]
    if invite.revoked_by is not None:
        return "this invite was revoked"
    if invite.used >= invite.uses:
        return "this invite has been used up"
    if invite.expires is not None and now > invite.expires:
        return "this invite has expired"
    return None


__all__ = [
    "Ack",
    "Action",
    "Approve",
    "CircleView",
    "Introduce",
    "JoinRequestShown",
    "MembershipLifecycle",
    "PendingRequest",
    "Refuse",
    "Rotate",
    "Share",
    "invite_problem",
]
