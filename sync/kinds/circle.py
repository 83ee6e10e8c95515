"""Circle kinds: the genesis (``circle.create``), ``charter.update`` and ``profile.set``.

The genesis binds the circle id to its creator: ``circle id = BLAKE2b-128(creator key ||
salt, person="kith-circle")``. A member who forges a competing genesis (one that sorts
first) cannot make it hash to this circle's id, so it is rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kith.identity.crypto import blake2b
from kith.identity.errors import LocalProtocolError, UsageError
from kith.sync import limits
from kith.sync.kinds import alloc as alloc_kind
from kith.sync.kinds import keys, schema
from kith.sync.kinds.common import Handler, OpRejected
from kith.sync.kinds.records import (
    APPROVED,
    DEFAULT_CLOSES_S,
    DEFAULT_GOVERNANCE,
    MAX_CLOSES_S,
    MIN_CLOSES_S,
    ORGANIZER,
    PROPOSAL_KINDS,
    AllocRules,
    Charter,
    CircleInfo,
    DecisionRule,
    Governance,
    Grant,
    Member,
    Profile,
)
from kith.sync.opkind import OpKind
from kith.sync.ops import Op, SignedOp

if TYPE_CHECKING:
    from kith.identity.keys import MemberIdentity
    from kith.sync.state import CircleState

DEFAULT_RULES: dict[str, DecisionRule] = {
    "spend": DecisionRule(quorum_pct=50, threshold_pct=60, consent=False),
    "charter": DecisionRule(quorum_pct=60, threshold_pct=75, consent=True),
    # Removing someone is the gravest decision: three quarters of the circle must take
    # part, so two quick votes in a four-person circle cannot push someone out.
    "remove": DecisionRule(quorum_pct=75, threshold_pct=67, consent=False),
    "general": DecisionRule(quorum_pct=30, threshold_pct=50, consent=False),
}

_GENESIS_KEYS = frozenset({"name", "description", "charter", "salt", "card", "epoch"})
_CHARTER_KEYS = frozenset({"text", "members_can_invite", "history", "rules"})
_RULES_KEYS = frozenset(PROPOSAL_KINDS)
_RULE_KEYS = frozenset({"quorum_pct", "threshold_pct", "consent"})
_RULE_CLOSES = "closes_s"
"""Optional in a rule; absent means `DEFAULT_CLOSES_S` (so charters written before it stay valid)."""
_GOVERNANCE = "governance"
"""Optional in a charter: `Governance` settings; absent means `DEFAULT_GOVERNANCE`."""
_GOVERNANCE_KEYS = frozenset(Governance._fields)
ORGANIZERS_AT_RANGE = (2, 1000)
IDLE_S_RANGE = (3600, MAX_CLOSES_S)
_CHARTER_UPDATE_KEYS = frozenset({"proposal"})
_PROFILE_KEYS = frozenset({"display_name", "pronouns", "skills"})

ALREADY_GENESIS = "the circle already has a genesis"
GENESIS_PARENTS = "a genesis must have no parents"
GENESIS_UNBOUND = "genesis author and salt do not hash to this circle id"
CHARTER_ONLY_BY_PROPOSAL = "the charter changes only through an approved charter proposal"


def new_circle_id(creator_public_key: bytes, salt: bytes) -> bytes:
    """The 16-byte circle id bound to its creator's signing key and a random salt."""
    if len(creator_public_key) != limits.MEMBER_ID_BYTES or len(salt) != schema.SALT_BYTES:
        raise LocalProtocolError("a circle id needs a 32-byte key and a 16-byte salt")
    return blake2b(creator_public_key + salt, person=b"kith-circle", size=limits.CIRCLE_ID_BYTES)


def charter_body(
    text: str = "",
    *,
    members_can_invite: bool = False,
    history: bool = False,
    rules: dict[str, DecisionRule] | None = None,
    confirm_joins: bool = False,
    alloc: AllocRules | None = None,
    governance: Governance | None = None,
) -> dict[str, Any]:
    """The wire form of a charter (as in ``circle.create`` and charter proposals).

    ``history``: whether newcomers receive the earlier epoch keys and so can read what was
    said before they joined. Off by default: people spoke in front of who was there.
    ``confirm_joins``: whether an organizer must confirm every join, even with a valid
    invite (a human in the loop for leaked codes). The key is present only when true.
    ``alloc``: the fund's allocation rules (`kith.sync.kinds.alloc`); the key is present only
    when there are some.
    ``governance``: `Governance` settings; the key is present only when they differ from
    `DEFAULT_GOVERNANCE`.
    """
    chosen = {**DEFAULT_RULES, **(rules or {})}
    body: dict[str, Any] = {
        "text": text,
        "members_can_invite": members_can_invite,
        "history": history,
        "rules": {kind: rule_body(chosen[kind]) for kind in PROPOSAL_KINDS},
    }
    if confirm_joins:
        body["confirm_joins"] = True
    if alloc is not None:
        body["alloc"] = alloc_kind.rules_body(alloc)
    if governance is not None and governance != DEFAULT_GOVERNANCE:
        body[_GOVERNANCE] = governance._asdict()
    return body


def parse_governance(raw: Any, where: str) -> Governance | None:
    """The charter's ``governance`` map; None when it states the defaults (one state for both)."""
    body = schema.exact_keys(raw, _GOVERNANCE_KEYS, where)
    settings = Governance(
        schema.integer(body["organizers_at"], f"{where}.organizers_at", *ORGANIZERS_AT_RANGE),
        schema.integer(body["idle_s"], f"{where}.idle_s", *IDLE_S_RANGE),
    )
    return None if settings == DEFAULT_GOVERNANCE else settings


def genesis_op(
    creator: MemberIdentity,
    *,
    name: str,
    salt: bytes,
    ts: int,
    epoch: bytes,
    description: str = "",
    charter: dict[str, Any] | None = None,
) -> SignedOp:
    """The signed ``circle.create`` op of a new circle; its ``op.circle`` is the circle id.

    ``salt`` is 16 random bytes chosen by the caller (this module draws no randomness);
    ``epoch`` is the id of the circle's first epoch key. The creator's identity card
    goes in, so every member can seal keys to the creator.
    """
    body = {
        "name": name,
        "description": description,
        "charter": charter if charter is not None else charter_body(),
        "salt": salt,
        "card": creator.card().to_bytes(),
        "epoch": epoch,
    }
    circle_id = new_circle_id(creator.member_id, salt)
    return SignedOp.create(Op(circle_id, creator.member_id, (), 1, ts, OpKind.CIRCLE_CREATE, body, seq=1), creator)


def rule_body(rule: DecisionRule) -> dict[str, Any]:
    """The wire form of a rule: ``closes_s`` only when it is not the default."""
    body: dict[str, Any] = {"quorum_pct": rule.quorum_pct, "threshold_pct": rule.threshold_pct, "consent": rule.consent}
    if rule.closes_s != DEFAULT_CLOSES_S:
        body[_RULE_CLOSES] = rule.closes_s
    return body


def parse_rule(raw: Any, where: str) -> DecisionRule:
    closes = type(raw) is dict and _RULE_CLOSES in raw
    body = schema.exact_keys(raw, _RULE_KEYS | {_RULE_CLOSES} if closes else _RULE_KEYS, where)
    return DecisionRule(
        schema.percent(body["quorum_pct"], f"{where}.quorum_pct", 0),
        schema.percent(body["threshold_pct"], f"{where}.threshold_pct", 1),
        schema.boolean(body["consent"], f"{where}.consent"),
        schema.closing_window(body[_RULE_CLOSES], f"{where}.{_RULE_CLOSES}") if closes else DEFAULT_CLOSES_S,
    )


def parse_charter(raw: Any, where: str) -> Charter:
    """A charter map (at ``where`` in the body: "charter", or "details" in a proposal)."""
    confirm = type(raw) is dict and "confirm_joins" in raw
    rules_present = type(raw) is dict and "alloc" in raw
    governed = type(raw) is dict and _GOVERNANCE in raw
    keys = (
        _CHARTER_KEYS
        | ({"confirm_joins"} if confirm else set())
        | ({"alloc"} if rules_present else set())
        | ({_GOVERNANCE} if governed else set())
    )
    body = schema.exact_keys(raw, frozenset(keys), where)
    if confirm and body["confirm_joins"] is not True:
        raise schema.InvalidBody(f"{where}.confirm_joins", "present only when true")
    text = schema.long_text(body["text"], f"{where}.text", schema.MAX_CHARTER_CHARS, allow_blank=True)
    invite = schema.boolean(body["members_can_invite"], f"{where}.members_can_invite")
    history = schema.boolean(body["history"], f"{where}.history")
    rules = schema.exact_keys(body["rules"], _RULES_KEYS, f"{where}.rules")
    parsed = tuple(parse_rule(rules[kind], f"{where}.rules.{kind}") for kind in PROPOSAL_KINDS)
    alloc = alloc_kind.parse_rules(body["alloc"], f"{where}.alloc") if rules_present else None
    governance = parse_governance(body[_GOVERNANCE], f"{where}.{_GOVERNANCE}") if governed else None
    return Charter(text, invite, parsed, None, history, confirm, alloc, governance)


CHARTER_SETTINGS = ("text", "members_can_invite", "history", "confirm_joins", "rules", "alloc", _GOVERNANCE)
"""What a charter proposal can change (docs/OPS.md §4, the charter map)."""
_CHARTER_FLAGS = ("members_can_invite", "history", "confirm_joins")
_RULE_RANGES = {"quorum_pct": 0, "threshold_pct": 1}


def amend_charter(current: Charter, changes: Any) -> dict[str, Any]:
    """The charter map a charter proposal carries: ``current`` with ``changes`` made.

    ``changes`` maps some of `CHARTER_SETTINGS` to new values; ``rules`` maps proposal
    kinds to some of a rule's fields (the rest stay as they are). Everything is checked
    here, as the fold will check it, so a mistake is one line for the person who made it
    (`UsageError`) rather than a signed op every member lists as rejected.
    """
    if type(changes) is not dict or not changes:
        raise UsageError(f"say what the charter should change: one or more of {', '.join(CHARTER_SETTINGS)}")
    unknown = sorted(str(key) for key in changes if key not in CHARTER_SETTINGS)
    if unknown:
        raise UsageError(f"the charter has no setting {unknown[0]!r} (it has {', '.join(CHARTER_SETTINGS)})")
    for flag in _CHARTER_FLAGS:
        if flag in changes and type(changes[flag]) is not bool:
            raise UsageError(f"the charter's {flag} must be true or false")
    text = changes.get("text", current.text)
    if type(text) is not str:
        raise UsageError("the charter's text must be text")
    rules = {kind: current.rule(kind)._asdict() for kind in PROPOSAL_KINDS}
    asked = changes.get("rules", {})
    if type(asked) is not dict:
        raise UsageError(f"the charter's rules map proposal kinds ({', '.join(PROPOSAL_KINDS)}) to rules")
    for kind, rule in asked.items():
        if kind not in PROPOSAL_KINDS:
            raise UsageError(f"there is no proposal kind {str(kind)!r} (there are {', '.join(PROPOSAL_KINDS)})")
        if type(rule) is not dict or not rule or not set(rule) <= _RULE_KEYS | {_RULE_CLOSES}:
            raise UsageError(f"the {kind} rule takes quorum_pct, threshold_pct, consent and closes_s")
        closes = rule.get(_RULE_CLOSES, rules[kind][_RULE_CLOSES])
        if type(closes) is not int or not MIN_CLOSES_S <= closes <= MAX_CLOSES_S:
            raise UsageError(
                f"the {kind} rule's closing window must be {MIN_CLOSES_S} s to {MAX_CLOSES_S // 86400} days in seconds"
            )
        for field, low in _RULE_RANGES.items():
            value = rule.get(field, rules[kind][field])
            if type(value) is not int or not low <= value <= 100:
                raise UsageError(f"the {kind} rule's {field} must be a whole number from {low} to 100")
        if type(rule.get("consent", False)) is not bool:
            raise UsageError(f"the {kind} rule's consent must be true or false")
        rules[kind].update(rule)
    settings = current.settings._asdict()
    asked_settings = changes.get(_GOVERNANCE, {})
    if type(asked_settings) is not dict or not set(asked_settings) <= _GOVERNANCE_KEYS:
        raise UsageError("the charter's governance takes organizers_at and idle_s")
    for field, (low, high) in (("organizers_at", ORGANIZERS_AT_RANGE), ("idle_s", IDLE_S_RANGE)):
        value = asked_settings.get(field, settings[field])
        if type(value) is not int or not low <= value <= high:
            raise UsageError(f"the charter's governance {field} must be a whole number from {low} to {high}")
        settings[field] = value
    body = charter_body(
        text,
        members_can_invite=changes.get("members_can_invite", current.members_can_invite),
        history=changes.get("history", current.history),
        rules={kind: DecisionRule(**rule) for kind, rule in rules.items()},
        confirm_joins=changes.get("confirm_joins", current.confirm_joins),
        alloc=alloc_kind.rules_from_options(changes["alloc"], current.alloc) if "alloc" in changes else current.alloc,
        governance=Governance(**settings),
    )
    try:
        proposed = parse_charter(body, "charter")
    except schema.InvalidBody as exc:
        raise UsageError(f"the proposed charter is not valid: {exc}") from None
    if proposed == current._replace(adopted_by=None):
        raise UsageError("the charter already says that: the proposal would change nothing")
    return body


def circle_create(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _GENESIS_KEYS, "body")
    name = schema.short_text(body["name"], "name")
    description = schema.long_text(body["description"], "description", schema.MAX_DESCRIPTION_CHARS, allow_blank=True)
    charter = parse_charter(body["charter"], "charter")
    salt = schema.fixed_bytes(body["salt"], "salt", schema.SALT_BYTES)
    dh_public = keys.card_key(body["card"], "card", op.author)
    epoch = keys.epoch_ref(body["epoch"], "epoch")
    if "circle" in state.info:
        raise OpRejected(ALREADY_GENESIS)
    if op.parents:
        raise OpRejected(GENESIS_PARENTS)
    if new_circle_id(op.author, salt) != op.circle:
        raise OpRejected(GENESIS_UNBOUND)
    state.put_info("circle", CircleInfo(signed.id, op.author, salt, name, description))
    state.put_info("charter", charter)
    founder = Member(
        (ORGANIZER,), op.lamport, signed.id, op.author, None, True, (Grant(ORGANIZER, signed.id, True),), ()
    )
    state.put(state.members, op.author, founder)
    state.put(state.seniority, op.author, ())
    state.put(state.cards, op.author, dh_public)
    keys.start_epoch(state, signed, op, epoch, None)


def charter_update(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    """Accepted only when it names the approved charter proposal now in force.

    The approval itself changed the charter (docs/OPS.md); this op records a member's
    acknowledgement and has no effect of its own. Any other ``charter.update`` is a
    direct edit of the charter and is rejected.
    """
    body = schema.exact_keys(body, _CHARTER_UPDATE_KEYS, "body")
    proposal_id = schema.op_ref(body["proposal"], "proposal")
    proposal = state.proposals.get(proposal_id)
    if (
        proposal is None
        or proposal.kind != "charter"
        or proposal.status != APPROVED
        or state.info["charter"].adopted_by != proposal_id
    ):
        raise OpRejected(CHARTER_ONLY_BY_PROPOSAL)


def profile_set(state: CircleState, signed: SignedOp, op: Op, body: Any) -> None:
    body = schema.exact_keys(body, _PROFILE_KEYS, "body")
    profile = Profile(
        schema.short_text(body["display_name"], "display_name"),
        schema.optional_short(body["pronouns"], "pronouns", 32),
        schema.short_text_list(body["skills"], "skills", schema.MAX_SKILLS, schema.MAX_NAME_CHARS),
    )
    state.put(state.profiles, op.author, profile)


HANDLERS: dict[str, Handler] = {
    OpKind.CIRCLE_CREATE: circle_create,
    OpKind.CHARTER_UPDATE: charter_update,
    OpKind.PROFILE_SET: profile_set,
}
