"""Fund kinds: contributions, treasurer receipts, and disbursements of approved spends.

Money is integers in minor units with a three-letter currency code; there is one
confirmed balance per currency. A member's ``fund.contribute`` only *states* that they
sent money; it counts once a treasurer confirms it with ``fund.receipt``. A treasurer's
``fund.disburse`` pays out an approved ``spend`` proposal, once, within the confirmed
balance of its currency. A contribution may recur monthly (`kith.sync.kinds.recurring`): then
each month's installment is receipted on its own. The ledger lists every entry with the
member who signed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.sync.kinds import recurring, schema
from kith.sync.kinds.common import Handler, OpRejected, require_role
from kith.sync.kinds.records import APPROVED, TREASURER, Contribution, LedgerEntry
from kith.sync.opkind import OpKind

if TYPE_CHECKING:
    from kith.sync.ops import Op, SignedOp
    from kith.sync.state import CircleState

_CONTRIBUTE_KEYS = frozenset({"amount", "currency", "note"})
_RECEIPT_KEYS = frozenset({"contribution"})
_DISBURSE_KEYS = frozenset({"proposal", "note"})
_MONTHLY = frozenset({recurring.MONTHLY})
_MONTH = frozenset({recurring.MONTH})

NOT_A_CONTRIBUTION = "contribution is not a contribution of this circle"
ALREADY_RECEIPTED = "the contribution is already confirmed"
NOT_A_SPEND = "proposal is not a spend proposal of this circle"
NOT_APPROVED = "the spend proposal is not approved"
ALREADY_DISBURSED = "the spend proposal was already paid out"
OVER_BALANCE = "the amount exceeds the confirmed balance"


def _require_treasurer(state: CircleState, author: bytes) -> None:
    require_role(state, author, TREASURER)


def fund_contribute(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys_optional(body, _CONTRIBUTE_KEYS, _MONTHLY, "body")
    amount = schema.amount(body["amount"])
    currency = schema.currency(body["currency"])
    note = schema.optional_long(body["note"], "note", schema.MAX_NOTE_CHARS)
    recurring.start(state, signed.id, recurring.first_month(state, body))
    state.put(
        state.contributions,
        signed.id,
        Contribution(op.author, op.lamport, op.ts, amount, currency, note, None, None),
    )
    state.push(
        state.ledger,
        LedgerEntry(signed.id, op.lamport, op.ts, "contribution", op.author, amount, currency, None, note),
    )


def fund_receipt(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys_optional(body, _RECEIPT_KEYS, _MONTH, "body")
    contribution_id = schema.op_ref(body["contribution"], "contribution")
    month = schema.month(body[recurring.MONTH], recurring.MONTH) if recurring.MONTH in body else None
    _require_treasurer(state, op.author)
    contribution = state.contributions.get(contribution_id)
    if contribution is None:
        raise OpRejected(NOT_A_CONTRIBUTION)
    if contribution.receipt is not None:
        raise OpRejected(ALREADY_RECEIPTED)
    recurring.check_installment(state, contribution_id, month)
    amount, currency = contribution.amount, contribution.currency
    if month is None:
        receipted = contribution._replace(receipt=signed.id, receipted_by=op.author)
        state.put(state.contributions, contribution_id, receipted)
    else:
        recurring.confirm_installment(state, contribution_id, month, signed.id)
    state.put(state.balances, currency, state.balances.get(currency, 0) + amount)
    state.push(
        state.ledger,
        LedgerEntry(signed.id, op.lamport, op.ts, "receipt", op.author, amount, currency, contribution_id, None),
    )


def fund_disburse(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _DISBURSE_KEYS, "body")
    proposal_id = schema.op_ref(body["proposal"], "proposal")
    note = schema.optional_long(body["note"], "note", schema.MAX_NOTE_CHARS)
    _require_treasurer(state, op.author)
    proposal = state.proposals.get(proposal_id)
    if proposal is None or proposal.kind != "spend":
        raise OpRejected(NOT_A_SPEND)
    if proposal.status != APPROVED:
        raise OpRejected(NOT_APPROVED)
    if proposal.disbursed_by is not None:
        raise OpRejected(ALREADY_DISBURSED)
    spend = proposal.spend
    balance = state.balances.get(spend.currency, 0)
    if spend.amount > balance:
        raise OpRejected(OVER_BALANCE)
    state.put(state.proposals, proposal_id, proposal._replace(disbursed_by=signed.id))
    state.put(state.balances, spend.currency, balance - spend.amount)
    state.push(
        state.ledger,
        LedgerEntry(
            signed.id,
            op.lamport,
            op.ts,
            "disbursement",
            op.author,
            spend.amount,
            spend.currency,
            proposal_id,
            note,
        ),
    )


HANDLERS: dict[str, Handler] = {
    **recurring.HANDLERS,
    OpKind.FUND_CONTRIBUTE: fund_contribute,
    OpKind.FUND_RECEIPT: fund_receipt,
    OpKind.FUND_DISBURSE: fund_disburse,
}
