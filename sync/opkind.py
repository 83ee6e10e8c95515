"""Every op kind this build folds, in one place (docs/OPS.md §5 describes each).

An `OpKind` member *is* its wire name: a `str` subclass that compares, hashes and encodes
(CBOR and JSON) exactly like the plain string, so handler tables keyed by members are
looked up with the plain kinds that decoded ops carry. Two boundaries want the plain
string and get ``.value``: `kith.sync.ops.Op` accepts only exact ``str`` kinds (it checks
untrusted input with ``type(kind) is str``), and anything that prints a kind.

A kind this build does not know is still a valid op kind on the wire (`Op` checks only
its shape): the fold keeps such an op and records it as rejected ("unknown kind"), so
kinds are added without a protocol version. `kith.sync.kinds.HANDLERS` has a handler for
exactly these members, and tests/sync/test_kinds.py checks that it stays so.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["OpKind"]


@unique
class OpKind(StrEnum):
    # Circle (kith.sync.kinds.circle)
    CIRCLE_CREATE = "circle.create"
    CHARTER_UPDATE = "charter.update"
    PROFILE_SET = "profile.set"
    # Membership and roles (membership, stewardship)
    MEMBER_ADD = "member.add"
    MEMBER_REMOVE = "member.remove"
    ROLE_GRANT = "role.grant"
    ROLE_REVOKE = "role.revoke"
    ROLE_HANDOVER = "role.handover"
    # Support (support)
    MSG_POST = "msg.post"
    MSG_EDIT = "msg.edit"
    MSG_DELETE = "msg.delete"
    MSG_REACT = "msg.react"
    CHECKIN = "checkin"
    # Mutual aid (aid)
    AID_PLEDGE = "aid.pledge"
    AID_REQUEST = "aid.request"
    AID_MATCH = "aid.match"
    AID_FULFIL = "aid.fulfil"
    AID_WITHDRAW = "aid.withdraw"
    # Decisions (decisions)
    PROPOSAL_CREATE = "proposal.create"
    PROPOSAL_VOTE = "proposal.vote"
    PROPOSAL_WITHDRAW = "proposal.withdraw"
    PROPOSAL_CLOSE = "proposal.close"
    # Fund (fund, recurring)
    FUND_CONTRIBUTE = "fund.contribute"
    FUND_RECEIPT = "fund.receipt"
    FUND_DISBURSE = "fund.disburse"
    FUND_STOP = "fund.stop"
    # Allocation (alloc)
    ALLOC_ASK = "alloc.ask"
    ALLOC_CLOSE = "alloc.close"
    ALLOC_REVEAL = "alloc.reveal"
    ALLOC_DRAW = "alloc.draw"
    ALLOC_PAY = "alloc.pay"
    # Events (events)
    EVENT_CREATE = "event.create"
    EVENT_RSVP = "event.rsvp"
    # Keys, invites and relays (keys)
    KEY_ROTATE = "key.rotate"
    KEY_SHARE = "key.share"
    KEY_ACK = "key.ack"
    MEMBER_COMPROMISED = "member.compromised"
    INVITE_CREATE = "invite.create"
    INVITE_REVOKE = "invite.revoke"
    RELAY_ADD = "relay.add"
    RELAY_REMOVE = "relay.remove"
    # Moderation (moderation)
    MSG_HIDE = "msg.hide"
