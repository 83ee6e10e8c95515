"""A node's part in the fund's allocation rules (docs/OPS.md, "Allocation").

* **Asking** (any member): the node draws a secret, keeps it in the keystore, and sends a
  signed ``private.ask`` statement (category, amount, pseudonym, commitment, note) sealed to
  the committee (docs/PROTOCOL.md §12), so the circle never sees who asked. A member on the
  committee posts their own ask.
* **Posting** (committee): a committee member's node opens the statement, checks that the
  asker keeps one pseudonym (the boxes of earlier asks say who was behind each), waits a
  random delay and its turn, and posts ``alloc.ask`` with who asked sealed to the committee.
* **Revealing**: once the asker's node sees its ask counted in a closed period, it sends the
  secret sealed to the committee (``private.reveal``), never earlier; a committee node posts
  ``alloc.reveal`` (the commitment authenticates it).
* **Closing and drawing** (any member): `sync.allocation.duties` says which periods are due
  and whose turn it is; nodes hold closes and draws dated in their future (`p2pnet.circles`).

Everything here only carries: what is valid is decided by the fold.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kith.identity.errors import RemoteProtocolError, UsageError
from kith.sync import allocation, money
from kith.sync.kinds import alloc, schema
from kith.sync.kinds.records import AllocRules, Ask
from kith.sync.lifecycle import TURN_DELAY_S
from kith.sync.private import make_statement, open_private, private_ref, seal_private

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle, MemberCircles
    from kith.p2pnet.keyfile import Keystore
    from kith.sync.envelope import Envelope
    from kith.sync.ops import SignedOp

log = logging.getLogger("kith.allocation")

SECRETS_KEY = "alloc_secrets"
"""Keystore extra: commitment -> {circle, secret}: our asks' secrets until they are public."""
RESEND_REVEAL_S = 120.0
"""A reveal sent to the committee and still not public after this long is sent again."""
MAX_QUEUED = 512
"""Statements a committee node keeps waiting to post (more are dropped, and counted)."""
_ASK_FIELDS = frozenset({"category", "amount", "pseudonym", "commit", "note"})
_REVEAL_FIELDS = frozenset({"ask", "secret"})


class AllocationService:
    """Carries the allocation rules for one member's circles (made by `p2pnet.lifecycle`,
    which hands it ``send``: store and gossip an envelope we made, and ``wake``: look at
    the circles' duties now)."""

    def __init__(
        self,
        circles: MemberCircles,
        *,
        keystore: Keystore,
        clock: Callable[[], float],
        send: Callable[[Circle, Envelope], None],
        wake: Callable[[], None],
        private_delay_s: float,
    ) -> None:
        self.circles = circles
        self.keystore = keystore
        self.clock = clock
        self.send = send
        self.wake = wake
        self.private_delay_s = private_delay_s
        self.me = circles.identity.member_id
        self.asks: dict[bytes, tuple[bytes, SignedOp, float]] = {}
        """ref -> (circle id, the asker's statement, when our turn to post it comes)."""
        self.reveals: dict[bytes, tuple[bytes, bytes]] = {}
        """ask id -> (circle id, secret): reveals relayed to us, to post."""
        self._sent: dict[bytes, float] = {}
        """ask id -> when we last sent our own reveal to the committee."""
        self.dropped = 0
        self.refused: Counter[str] = Counter()
        """Asks relayed to us that we would not post, by reason (a modified client's tries)."""

    # --- asking -------------------------------------------------------------------------

    def _rules(self, circle: Circle) -> AllocRules:
        rules = circle.replica.state.info["charter"].alloc
        if rules is None:
            raise UsageError("this circle's charter has no allocation rules: ask with 'kith request' instead")
        return rules

    def _committee(self, circle: Circle) -> list[bytes]:
        state = circle.replica.state
        return sorted(m for m in alloc.committee(state, self._rules(circle)) if m in state.cards)

    def _secrets(self) -> dict[bytes, dict[str, Any]]:
        return self.keystore.data.extra.setdefault(SECRETS_KEY, {})

    def ask(self, circle: Circle, category: str, amount: int, note: str) -> dict[str, Any]:
        """Ask the fund; returns what was sent (no op id when the committee posts it)."""
        state = circle.replica.state
        rules = self._rules(circle)
        if self.me not in state.members:
            raise UsageError("you are not a member of this circle (yet, or any more)")
        if rules.budget(category) is None:
            names = ", ".join(name for name, _budget in rules.categories)
            raise UsageError(f"the charter has no category {category!r} (it has {names})")
        if not 1 <= amount <= rules.cap:
            cap = money.format_amount(rules.cap, rules.currency)
            raise UsageError(f"the amount must be more than nothing and at most the per-person cap, {cap}")
        schema.long_text(note or "-", "note", schema.MAX_NOTE_CHARS)
        committee = self._committee(circle)
        if not committee:
            raise UsageError("this circle has no treasurer (or committee) to receive the ask")
        secret, commit = allocation.new_secret(self.circles.rand)
        pseud = alloc.pseudonym(self.circles.identity.dh_secret, circle.id)
        self._secrets()[commit] = {"circle": circle.id, "secret": secret}
        self.keystore.save()  # durable before anyone can see the commitment
        body = {"category": category, "amount": amount, "pseudonym": pseud, "commit": commit, "note": note or ""}
        if self.me in committee:
            statement = make_statement(self.circles.identity, circle.id, "private.ask", body, ts=int(self.clock()))
            return {**self._post_ask(circle, statement), "commit": commit.hex()}
        now = int(self.clock())
        statement = make_statement(self.circles.identity, circle.id, "private.ask", body, ts=now)
        envelope = seal_private(statement, [state.cards[m] for m in committee], epoch_key=circle.keys.current_key,
                                ts=now, rand=self.circles.rand)  # fmt: skip
        self.send(circle, envelope)
        return {"id": None, "private": envelope.id.hex(), "commit": commit.hex(), "rejected": None}

    # --- the committee ----------------------------------------------------------------------

    def on_private(self, circle: Circle, envelope: Envelope) -> bool:
        """Handle a private ask or reveal sealed to us; False if it is not one."""
        state = circle.replica.state
        rules = state.info["charter"].alloc if "charter" in state.info else None
        if rules is None or self.me not in alloc.committee(state, rules):
            return False
        try:
            statement = open_private(envelope, self.circles.identity)
        except RemoteProtocolError:
            return False
        op = statement.op
        if op.kind not in ("private.ask", "private.reveal"):
            return False
        if op.circle != circle.id or op.author not in state.members or type(op.body) is not dict:
            return True
        if len(self.asks) + len(self.reveals) >= MAX_QUEUED:
            self.dropped += 1
            return True
        if op.kind == "private.ask" and set(op.body) == _ASK_FIELDS:
            ref = private_ref(statement)
            if ref not in self.asks:
                # A random delay first (the placeholder's timing must not point at whoever
                # sent the envelope), then the committee's turns.
                delay = self.private_delay_s * int.from_bytes(self.circles.rand(4), "big") / 2**32
                turn = sorted(alloc.committee(state, rules)).index(self.me) * TURN_DELAY_S
                self.asks[ref] = (circle.id, statement, self.clock() + delay + turn)
        elif op.kind == "private.reveal" and set(op.body) == _REVEAL_FIELDS:
            ask_id, secret = op.body["ask"], op.body["secret"]
            ask = state.asks.get(ask_id) if type(ask_id) is bytes else None
            if ask is not None and type(secret) is bytes and alloc.commitment(secret) == ask.commit:
                self.reveals[ask_id] = (circle.id, secret)
        self.wake()
        return True

    def _same_person(self, circle: Circle, member: bytes, pseud: bytes) -> str | None:
        """Why an ask may not be posted (the asker keeps one pseudonym, and it is theirs), or None."""
        asks = circle.replica.state.asks.values()
        if any(ask.pseudonym == pseud and not self._is(ask, member) for ask in asks):
            return "that pseudonym is someone else's"
        if any(ask.pseudonym != pseud and self._is(ask, member) for ask in asks):
            return "they asked before under another pseudonym"
        return None

    def _would_refuse(self, circle: Circle, category: Any, amount: Any, pseud: bytes) -> str | None:
        """What the fold would refuse anyway (a member's modified client must not make the
        treasurer sign ops every node lists as rejected)."""
        state = circle.replica.state
        rules = state.info["charter"].alloc
        if rules is None or type(category) is not str or rules.budget(category) is None:
            return "no such category"
        if type(amount) is not int or not 1 <= amount <= rules.cap:
            return "not an amount within the cap"
        period = alloc.period_of(rules, int(self.clock()))
        for ask_id in state.open_asks.get(period, ()):
            ask = state.asks[ask_id]
            if ask.pseudonym == pseud and ask.category == category:
                return "already asked in this category this period"
        return None

    def _is(self, ask: Ask, member: bytes) -> bool:
        boxes = ask.private.get("boxes")
        box = boxes.get(self.me) if type(boxes) is dict else None
        if type(box) is not bytes:
            return False
        try:
            return allocation.open_ask_box(box, self.circles.identity)["member"] == member
        except RemoteProtocolError:
            return False

    def _post_ask(self, circle: Circle, statement: SignedOp) -> dict[str, Any]:
        body, member = statement.op.body, statement.op.author
        try:
            category, amount, note = body["category"], body["amount"], body["note"]
            pseud = schema.fixed_bytes(body["pseudonym"], "pseudonym", alloc.PSEUDONYM_BYTES)
            commit = schema.fixed_bytes(body["commit"], "commit", 32)
            if type(note) is not str or len(note) > schema.MAX_NOTE_CHARS:
                raise schema.InvalidBody("note", "too long")
        except (KeyError, RemoteProtocolError):
            log.warning("ignoring a malformed private ask")
            self.refused["malformed"] += 1
            return {"id": None, "rejected": "malformed"}
        problem = self._same_person(circle, member, pseud) or self._would_refuse(circle, category, amount, pseud)
        if problem is not None:
            log.warning("not posting an ask in circle %s: %s", circle.id.hex()[:8], problem)
            self.refused[problem] += 1
            return {"id": None, "rejected": problem}
        now = int(self.clock())
        try:
            public = allocation.ask_body(circle.replica.state, member=member, pseudonym=pseud, commit=commit,
                                         category=category, amount=amount, ts=now, ref=private_ref(statement),
                                         note=note)  # fmt: skip
        except RemoteProtocolError as exc:
            return {"id": None, "rejected": str(exc)}
        _envelope, result = self.circles.author(circle, "alloc.ask", public)  # stored, indexed and gossiped
        signed = result.applied[0] if result.applied else None
        reason = dict(result.rejected).get(signed.id) if signed is not None else None
        if reason is not None:
            log.warning("the circle refused an ask posted for a member: %s", reason)
        return {"id": signed.id.hex() if signed else None, "rejected": reason}

    # --- every tick -----------------------------------------------------------------------

    def maintain(self, circle: Circle) -> None:
        state = circle.replica.state
        if self.me not in state.members or "charter" not in state.info:
            return
        now = self.clock()
        items = allocation.duties(state, self.me, now, TURN_DELAY_S)
        for ref, (circle_id, statement, due) in list(self.asks.items()):
            if circle_id != circle.id:
                continue
            if any(ask.private.get("ref") == ref for ask in state.asks.values()):
                del self.asks[ref]  # another committee member posted it
            elif now >= due:
                del self.asks[ref]
                self._post_ask(circle, statement)
        for ask_id, (circle_id, secret) in list(self.reveals.items()):
            if circle_id == circle.id:
                del self.reveals[ask_id]
                if allocation.reveals_due(state, {state.asks[ask_id].commit: secret}):
                    items.append(("alloc.reveal", {"ask": ask_id, "secret": secret}))
        self._reveal_mine(circle, items, now)
        if items:
            self.circles.author_many(circle, items)  # stored, indexed and gossiped

    def _reveal_mine(self, circle: Circle, items: list[tuple[str, dict[str, Any]]], now: float) -> None:
        """Our asks' secrets, once their period is closed: to the committee (or posted, if we
        are on it); forgotten once they are public."""
        state = circle.replica.state
        mine = {c: entry["secret"] for c, entry in self._secrets().items() if entry.get("circle") == circle.id}
        if not mine:
            return
        # Forgotten once public, or once the ask can no longer be drawn (late, or drawn unrevealed).
        settled = {a.commit for a in state.asks.values() if a.secret is not None or a.outcome is not None}
        public = [c for c in mine if c in settled]
        if public:
            for commit in public:
                del self._secrets()[commit]
            self.keystore.save()
        rules = state.info["charter"].alloc
        committee = sorted(m for m in alloc.committee(state, rules) if m in state.cards) if rules else []
        for ask_id, secret in allocation.reveals_due(state, mine):
            if any(kind == "alloc.reveal" and body["ask"] == ask_id for kind, body in items):
                continue
            if self.me in committee:
                items.append(("alloc.reveal", {"ask": ask_id, "secret": secret}))
            elif committee and now - self._sent.get(ask_id, -RESEND_REVEAL_S) >= RESEND_REVEAL_S:
                self._sent[ask_id] = now
                statement = make_statement(self.circles.identity, circle.id, "private.reveal",
                                           {"ask": ask_id, "secret": secret}, ts=int(now))  # fmt: skip
                cards = [state.cards[m] for m in committee]
                envelope = seal_private(statement, cards, epoch_key=circle.keys.current_key, ts=int(now),
                                        rand=self.circles.rand)  # fmt: skip
                self.send(circle, envelope)


def allocations_view(circle: Circle, me: Any) -> dict[str, Any]:
    """The allocation report and every ask as this member may see it (bytes still bytes)."""
    state = circle.replica.state
    rules = state.info["charter"].alloc if "charter" in state.info else None
    return {
        "rules": None if rules is None else alloc.rules_body(rules),
        "committee": sorted(alloc.committee(state, rules)) if rules is not None else [],
        "asks": allocation.asks_view(state, me),
        **allocation.report(state),
    }
