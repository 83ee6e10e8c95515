"""A small circle on one replica for the circle-state tests (fixtures in conftest.py).

Its own module, not conftest, so test modules can import it by a name no other test
directory uses.
"""

from __future__ import annotations

from typing import Any

from sync_support import FIRST_EPOCH, reader_for, sealed_body

from kith.identity.keys import MemberIdentity
from kith.sync.content import ContentReader
from kith.sync.kinds.circle import genesis_op
from kith.sync.kinds.membership import member_add_body
from kith.sync.ops import SignedOp
from kith.sync.replica import CircleReplica, IngestResult


def person(name: str, number: int) -> MemberIdentity:
    return MemberIdentity(name, bytes([number]) * 32, bytes([number + 100]) * 32, 0)


PEOPLE = {name: person(name, i + 1) for i, name in enumerate(["alice", "bob", "carol", "dana", "eve", "mallory"])}


class Circle:
    """A circle on one replica; ``act`` signs an op on the replica's heads and ingests it."""

    def __init__(self, charter: dict[str, Any] | None = None, *, founder: str = "alice") -> None:
        self.genesis = genesis_op(
            PEOPLE[founder], name="Night owls", salt=bytes(range(16)), ts=1, epoch=FIRST_EPOCH, charter=charter
        )
        self.replica = CircleReplica(self.genesis.op.circle)
        self.replica.ingest(self.genesis)
        self.ts = 1

    people = PEOPLE

    @staticmethod
    def member(name: str) -> bytes:
        return PEOPLE[name].member_id

    @property
    def state(self) -> Any:
        return self.replica.state

    def sign(self, who: str, kind: str, body: dict[str, Any]) -> SignedOp:
        self.ts += 1
        body = sealed_body(kind, body, PEOPLE[who].member_id, self.state.circle_id)
        return self.replica.author_op(PEOPLE[who], kind, body, ts=self.ts)

    @property
    def reader(self) -> ContentReader:
        return reader_for(self.state.circle_id)

    def act(self, who: str, kind: str, body: dict[str, Any]) -> SignedOp:
        signed = self.sign(who, kind, body)
        result: IngestResult = self.replica.ingest(signed)
        assert result.applied == (signed,), result
        return signed

    def reason(self, signed: SignedOp) -> str | None:
        return self.state.is_rejected(signed.id)

    def add(self, who: str, by: str = "alice", vouch: str | None = None) -> SignedOp:
        return self.act(by, "member.add", member_add_body(PEOPLE[who].card().to_bytes(), vouch=vouch))

    def grant(self, who: str, role: str, by: str = "alice") -> SignedOp:
        return self.act(by, "role.grant", {"member": PEOPLE[who].member_id, "role": role})

    def post(self, who: str, text: str = "hello", **fields: Any) -> SignedOp:
        body = {"text": text, "reply_to": None, "content_warning": None, "urgent": False, **fields}
        return self.act(who, "msg.post", body)

    def propose(self, who: str, kind: str, details: dict[str, Any], title: str = "A proposal") -> SignedOp:
        return self.act(who, "proposal.create", {"kind": kind, "title": title, "text": "", "details": details})

    def vote(self, who: str, proposal: SignedOp, choice: str) -> SignedOp:
        return self.act(who, "proposal.vote", {"proposal": proposal.id, "choice": choice, "reason": None})

    def close(self, who: str, proposal: SignedOp) -> SignedOp:
        """Sign a ``proposal.close`` dated at the proposal's closing time (or now, if later)."""
        self.ts = max(self.ts, self.state.proposals[proposal.id].closes_at - 1)
        return self.act(who, "proposal.close", {"proposal": proposal.id})

    def contribute(self, who: str, amount: int, currency: str = "EUR") -> SignedOp:
        return self.act(who, "fund.contribute", {"amount": amount, "currency": currency, "note": None})
