"""The records the circle state is made of.

Every record is an immutable `NamedTuple`: the fold replaces a record rather than
changing it, which is what makes the undo log a list of ``(table, key, old record)``
triples. NamedTuples rather than frozen dataclasses because the fold creates one per op
at ~20 µs per op all told, and because a NamedTuple *is* the positional row that the
canonical state encoding (see docs/OPS.md, "Canonical state") writes: no conversion.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

from kith.identity.errors import LocalProtocolError

ORGANIZER = "organizer"
TREASURER = "treasurer"
ROLES = (ORGANIZER, TREASURER)

PROPOSAL_KINDS = ("spend", "charter", "remove", "general")
"""Proposal kinds, in the order their rules appear in `Charter.rules`."""
REVIEW, ELECTION = "review", "organizer"
"""Governance proposals (docs/OPS.md §6a): a membership review and an organizer election.
Both are decided by the charter's ``remove`` rule (`RULE_OF`), so they have no rule of
their own and every charter written before them stays valid."""
RULE_OF = {REVIEW: "remove", ELECTION: "remove"}
ALL_PROPOSAL_KINDS = (*PROPOSAL_KINDS, REVIEW, ELECTION)

OPEN, APPROVED, REJECTED, WITHDRAWN = "open", "approved", "rejected", "withdrawn"
EXPIRED = "expired"
"""A review whose closing came without its quorum: nothing happens (docs/OPS.md §6a)."""
MATCHED, FULFILLED = "matched", "fulfilled"

DEFAULT_CLOSES_S = 72 * 3600
"""A proposal's voting window when neither the charter nor the proposal names one."""
MIN_CLOSES_S = 60
"""The shortest window a charter or a proposal may set (a minute: for small, present circles)."""
MAX_CLOSES_S = 30 * 24 * 3600
"""The longest: a proposal holds one of its author's open slots until it closes."""


class DecisionRule(NamedTuple):
    quorum_pct: int
    """0..100: percentage of the eligible members who must have voted (abstain counts)."""
    threshold_pct: int
    """1..100: approve * 100 >= threshold_pct * (approve + object)."""
    consent: bool
    """True: a single objection rejects the proposal."""
    closes_s: int = DEFAULT_CLOSES_S
    """Seconds from a proposal's claimed time to its closing time, unless it names its own."""


class AllocRules(NamedTuple):
    """How the fund shares money between asks (docs/OPS.md, "Allocation")."""

    period_s: int
    """Length of a period in seconds; period n covers claimed times [n * period_s, (n + 1) * period_s)."""
    reveal_s: int
    """After a period ends, how long its asks' secrets may be revealed before the draw."""
    currency: str
    categories: tuple[tuple[str, int], ...]
    """(name, budget per period in minor units), sorted by name."""
    cap: int
    """The most one person (pseudonym) may be allocated in one period, over all categories."""
    cooldown: int
    """Periods after one in which a person was allocated money during which they are not."""
    priority: bool
    """Whether those helped longest ago (or never) rank before the draw's order."""
    committee: tuple[bytes, ...]
    """Sorted member ids who see who asked; () means the treasurers."""

    def budget(self, category: str) -> int | None:
        for name, budget in self.categories:
            if name == category:
                return budget
        return None


class Ask(NamedTuple):
    """An ask to the fund, posted by a committee member on a member's behalf."""

    author: bytes
    """The committee member who posted it (never the person asking)."""
    lamport: int
    ts: int
    period: int
    category: str
    amount: int
    currency: str
    pseudonym: bytes
    """16 bytes, the same for every ask of one person: caps and cool-downs are checkable."""
    commit: bytes
    """BLAKE2b-256 of the asker's secret (person "kith-alloc-cmt")."""
    private: dict[str, object]
    """``{ref, boxes}``: who asked, sealed to each committee member."""
    secret: bytes | None
    reveal: bytes | None
    """The ``alloc.reveal`` that published the secret."""
    rank: int | None
    """1-based place in its period's draw; None until drawn (or if not counted)."""
    outcome: str | None
    """None while open; then allocated, over-budget, over-cap, cooldown, no-category or late."""
    paid_by: bytes | None


class AllocPeriod(NamedTuple):
    """A closed period: what its close counted and, once drawn, the draw."""

    closed_by: bytes
    rules: AllocRules
    """The charter's rules at the close: they decide the draw."""
    counted: tuple[bytes, ...]
    """Ask ids in the close's causal past, sorted."""
    drawn_by: bytes | None
    seed: bytes | None
    order: tuple[bytes, ...]
    """Counted ask ids in rank order (empty until drawn)."""


class Governance(NamedTuple):
    """The charter's optional ``governance`` settings (docs/OPS.md §4); None = the defaults."""

    organizers_at: int
    """From this many members on, clients ask for a second organizer (advice, not a rule)."""
    idle_s: int
    """An organizer election stays open this long; any organizer acting cancels it."""


DEFAULT_GOVERNANCE = Governance(organizers_at=5, idle_s=14 * 24 * 3600)


class Charter(NamedTuple):
    text: str
    members_can_invite: bool
    rules: tuple[DecisionRule, ...]
    """One rule per proposal kind, in `PROPOSAL_KINDS` order."""
    adopted_by: bytes | None
    """The approved charter proposal that set it; None for the genesis charter."""
    history: bool = False
    """Whether a newcomer's welcome carries the earlier epoch keys (they read the past)."""
    confirm_joins: bool = False
    """Whether an organizer must confirm every join, even one with a valid invite (the
    inviter's node then never lets anyone in by itself)."""
    alloc: AllocRules | None = None
    """The fund's allocation rules (`kith.sync.kinds.alloc`), or None: no rules, no asks."""
    governance: Governance | None = None
    """None when the charter leaves the key out (the defaults, `DEFAULT_GOVERNANCE`); the
    canonical row carries it only when set, so older states hash as before."""

    def rule(self, kind: str) -> DecisionRule:
        return self.rules[PROPOSAL_KINDS.index(RULE_OF.get(kind, kind))]

    @property
    def settings(self) -> Governance:
        return self.governance or DEFAULT_GOVERNANCE


class CircleInfo(NamedTuple):
    genesis: bytes
    creator: bytes
    salt: bytes
    name: str
    description: str


class StateInfo(TypedDict, total=False):
    """`CircleState.info`: the circle's single facts, each absent until an op sets it (a
    plain dict at run time, so the fold's undo log restores it like any other table)."""

    circle: CircleInfo
    """Set by ``circle.create``."""
    charter: Charter
    """The charter in force: the genesis charter, then each approved charter proposal's."""
    epoch: bytes
    """The current key epoch (its id)."""
    rotation_due: bool
    """Someone who held the current key left or the key reached outsiders: a rotation is owed."""


class Grant(NamedTuple):
    """How a member holds a role: the op that gave it, and whether they have seen it."""

    role: str
    op: bytes
    """The ``role.grant`` (the genesis for the founder's organizer role; for an organizer by
    succession, the op whose removal left the circle without one)."""
    acked: bool
    """An op of theirs cited ``op``: only then may they use the role (docs/OPS.md §2a)."""


class Member(NamedTuple):
    roles: tuple[str, ...]
    """Sorted, without repeats."""
    joined_lamport: int
    joined_op: bytes
    """The op that began this membership: their ``member.add`` (the genesis for the founder)."""
    added_by: bytes
    vouch: str | None
    acked: bool = False
    """An op of theirs cited ``joined_op``: their ops count only from then on."""
    grants: tuple[Grant, ...] = ()
    """One per role in ``roles``, sorted by role."""
    path: tuple[int, ...] | None = None
    """Organizer seniority (docs/OPS.md §2b): () for the founder; a grantee's path is the
    grantor's path plus the grant's seq. Smaller (as tuples) is more senior."""

    def grant(self, role: str) -> Grant | None:
        for grant in self.grants:
            if grant.role == role:
                return grant
        return None


class Removal(NamedTuple):
    """A removal (or demotion) that took effect: its target's ops it had not seen are struck."""

    start_lamport: int
    start_op: bytes
    """The target's membership (or role) began here: only later ops of theirs are struck."""
    end_lamport: int
    end_op: bytes
    """The removal itself (for a voted removal, the op that decided it)."""
    scope: str
    """"member": every op is struck; a role name: only ops that need that role."""
    anchors: tuple[bytes, ...] = ()
    """What the target acknowledged to hold it: their member.add, the grants of their roles."""


class Struck(NamedTuple):
    """An op whose author was removed (or demoted) by an op that had not seen it."""

    lamport: int
    author: bytes
    kind: str
    reason: str
    striker: bytes
    striker_lamport: int


class Profile(NamedTuple):
    display_name: str
    pronouns: str | None
    skills: tuple[str, ...]


class Message(NamedTuple):
    author: bytes
    lamport: int
    ts: int
    content: bytes
    """Sealed ``{text, content_warning}`` (`sync.content`); empty once deleted."""
    reply_to: bytes | None
    urgent: bool
    edits: int
    deleted: bool


class Checkin(NamedTuple):
    author: bytes
    lamport: int
    ts: int
    status: str
    content: bytes
    """Sealed ``{note}``."""


class AidItem(NamedTuple):
    type: str
    """"pledge" or "request"."""
    author: bytes
    lamport: int
    ts: int
    category: str
    content: bytes
    """Sealed ``{description}``."""
    amount: int | None
    unit: str | None
    expires: int | None
    status: str
    """open, matched, fulfilled or withdrawn."""
    matched: tuple[bytes, ...]
    """A pledge: () or (request id,). A request: the pledge ids matched to it, in fold order."""
    closed_by: bytes | None
    """The op that fulfilled or withdrew it."""
    private: dict[str, object] | None = None
    """A private request (sealed to organizers): ``{ref, boxes}``; see `kith.sync.kinds.aid`."""


class SpendDetails(NamedTuple):
    amount: int
    currency: str
    recipient: bytes | str
    purpose: str


class ReviewDetails(NamedTuple):
    """A membership review: whom it would remove, and why, sealed to the organizers."""

    member: bytes
    reasons: dict[bytes, bytes]
    """organizer id -> a sealed box of the reason (`sync.governance_io.seal_reason`)."""


ProposalDetails = SpendDetails | Charter | ReviewDetails | bytes | None
"""A proposal's details, by its kind (see `Proposal.details`)."""


class Proposal(NamedTuple):
    author: bytes
    lamport: int
    ts: int
    kind: str
    title: str
    text: str
    details: ProposalDetails
    """spend: SpendDetails; charter: the proposed Charter; remove and organizer: member id;
    review: ReviewDetails; general: None."""
    rule: DecisionRule
    """The charter's rule for this kind when the proposal was made; it decides the proposal."""
    electorate: tuple[bytes, ...]
    """Members at the proposal's position (sorted): only they vote."""
    status: str
    decided_by: bytes | None
    """The op at which the status stopped being open."""
    approve: int
    object: int
    abstain: int
    disbursed_by: bytes | None
    closes_at: int = 0
    """Claimed time (s) from which a ``proposal.close`` may end the vote: ts + the window."""

    # Typed views of ``details`` for code that has checked the kind; asking a proposal of
    # another kind is a bug of ours (`LocalProtocolError`), never something a peer causes.

    @property
    def spend(self) -> SpendDetails:
        """A spend proposal's amount, currency, recipient and purpose."""
        details = self.details
        if type(details) is not SpendDetails:
            raise LocalProtocolError(f"a {self.kind} proposal has no spend details")
        return details

    @property
    def proposed_charter(self) -> Charter:
        """A charter proposal's charter."""
        details = self.details
        if type(details) is not Charter:
            raise LocalProtocolError(f"a {self.kind} proposal proposes no charter")
        return details

    @property
    def target(self) -> bytes:
        """The member a remove, review or organizer proposal names."""
        details = self.details
        if type(details) is ReviewDetails:
            return details.member
        if type(details) is not bytes or self.kind not in ("remove", ELECTION):
            raise LocalProtocolError(f"a {self.kind} proposal names no member")
        return details


class Epoch(NamedTuple):
    """A circle key epoch: who introduced it, where, and the epoch it replaced."""

    op: bytes
    lamport: int
    author: bytes
    previous: bytes | None


class Invite(NamedTuple):
    author: bytes
    lamport: int
    op: bytes
    secret: bytes
    """32 bytes: only holders of the invite code (and members) know it; join requests
    are encrypted with a key derived from it."""
    uses: int
    expires: int | None
    used: int
    revoked_by: bytes | None


class Vote(NamedTuple):
    choice: str
    op: bytes
    reason: str | None


class Contribution(NamedTuple):
    author: bytes
    lamport: int
    ts: int
    amount: int
    currency: str
    note: str | None
    receipt: bytes | None
    receipted_by: bytes | None


class LedgerEntry(NamedTuple):
    op: bytes
    lamport: int
    ts: int
    entry: str
    """"contribution", "receipt" or "disbursement"."""
    signer: bytes
    amount: int
    currency: str
    ref: bytes | None
    """receipt: the contribution; disbursement: the spend proposal."""
    note: str | None


class Event(NamedTuple):
    author: bytes
    lamport: int
    ts: int
    starts: int
    content: bytes
    """Sealed ``{title, place_hint, text}``: where people meet is nobody else's business."""


class Rejection(NamedTuple):
    op: bytes
    lamport: int
    author: bytes
    kind: str
    reason: str


class Hidden(NamedTuple):
    """A message an organizer hid for everyone (``msg.hide``): its content is gone from the
    state, and this stays as the moderation log's entry."""

    by: bytes
    op: bytes
    lamport: int
    ts: int
    reason: str


class Recurring(NamedTuple):
    """A fund contribution or aid pledge repeated every month until it is stopped."""

    first: str
    """The first month ("YYYY-MM") it covers."""
    last: str | None
    """The last month it covers, once its author stopped it (a contribution's ``fund.stop``)."""
    stopped_by: bytes | None
