"""A circle with allocation rules, for the allocation tests (tests/sync/test_alloc*.py)."""

from __future__ import annotations

from typing import Any

from circle_support import PEOPLE, Circle

from kith.sync import allocation
from kith.sync.kinds import alloc
from kith.sync.kinds.circle import charter_body
from kith.sync.ops import SignedOp

HOUR = 3600
RULES: dict[str, Any] = {
    "period_s": HOUR,
    "reveal_s": 600,
    "currency": "EUR",
    "categories": {"rent": 1000, "legal": 500},
    "cap": 600,
    "cooldown": 1,
    "priority": True,
}


def secret_for(label: str) -> bytes:
    return (label.encode() * 32)[:32]


class FundCircle(Circle):
    """Alice (organizer) founds it; Bob is its treasurer; Carol, Dana and Eve are members.

    ``ask`` posts an ask as Bob on a member's behalf, with a secret fixed by a label, so the
    tests can reveal it (an honest asker's node keeps it and reveals it after the close)."""

    def __init__(self, rules: dict[str, Any] | None = None, *, balance: int = 10_000) -> None:
        super().__init__(charter_body(alloc=alloc.parse_rules(rules or RULES, "alloc")))
        for name in ("bob", "carol", "dana", "eve", "mallory"):
            self.add(name)
        self.grant("bob", "treasurer")
        for name in ("bob", "carol", "dana", "eve", "mallory"):
            self.post(name, "hello")  # each acknowledges their admission (and Bob his grant)
        if balance:
            receipt = self.contribute("carol", balance)
            self.act("bob", "fund.receipt", {"contribution": receipt.id})
        self.secrets: dict[bytes, bytes] = {}

    @property
    def rules(self) -> alloc.AllocRules:
        return self.state.info["charter"].alloc  # type: ignore[no-any-return]

    @staticmethod
    def pseud(name: str) -> bytes:
        return alloc.pseudonym(PEOPLE[name].dh_secret, b"c" * 16)

    def ask_body(self, name: str, category: str, amount: int, label: str | None = None) -> dict[str, Any]:
        secret = secret_for(label or f"{name}-{category}-{self.ts}")
        return allocation.ask_body(
            self.state,
            member=self.member(name),
            pseudonym=self.pseud(name),
            commit=alloc.commitment(secret),
            category=category,
            amount=amount,
            ts=self.ts + 1,
            ref=secret,  # any 32 bytes: the hash of the member's statement on a real node
        )

    def ask(self, name: str, category: str, amount: int, *, by: str = "bob", label: str | None = None) -> SignedOp:
        body = self.ask_body(name, category, amount, label)
        signed = self.sign(by, "alloc.ask", body)
        self.replica.ingest(signed)
        self.secrets[signed.id] = secret_for(label or f"{name}-{category}-{self.ts - 1}")
        return signed

    def at(self, ts: int) -> None:
        """Move the clock on (claimed times only ever go forward here)."""
        self.ts = max(self.ts, ts - 1)

    def end(self, period: int) -> int:
        return (period + 1) * HOUR

    def close(self, who: str, period: int) -> SignedOp:  # type: ignore[override]
        self.at(self.end(period))
        signed = self.sign(who, "alloc.close", {"period": period})
        self.replica.ingest(signed)
        return signed

    def reveal(self, who: str, ask: SignedOp, secret: bytes | None = None) -> SignedOp:
        signed = self.sign(who, "alloc.reveal", {"ask": ask.id, "secret": secret or self.secrets[ask.id]})
        self.replica.ingest(signed)
        return signed

    def draw(self, who: str, period: int) -> SignedOp:
        self.at(self.end(period) + 600)
        signed = self.sign(who, "alloc.draw", {"period": period})
        self.replica.ingest(signed)
        return signed

    def pay(self, who: str, ask: SignedOp) -> SignedOp:
        signed = self.sign(who, "alloc.pay", {"ask": ask.id, "note": None})
        self.replica.ingest(signed)
        return signed
