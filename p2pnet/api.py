"""The control API's methods: one per user action and query (docs/API.md).

Actions map a JSON request onto an op body: each parameter has a declared type, ids travel
as hex strings, optional parameters default to null. The node authors the op with the
member's key, folds it, stores it and gossips it; the reply names the new op's id. Queries
return the circle views as JSON (bytes as hex). Requests are untrusted input like any
other: every parameter is type-checked here, and the op body again by the fold.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kith.identity.errors import Malformed, UsageError
from kith.identity.keyring import RelayTopic
from kith.identity.keys import DEFAULT_NAME, safety_number
from kith.p2pnet.allocation import allocations_view
from kith.p2pnet.control import INVALID_PARAMS, RpcError
from kith.p2pnet.panic import panic_node
from kith.sync.envelope import relay_key
from kith.sync.invites import grant_signing_keypair
from kith.sync.kinds import alloc as alloc_kind
from kith.sync.kinds import schema
from kith.sync.kinds.circle import amend_charter
from kith.sync.kinds.records import ORGANIZER, TREASURER, ReviewDetails
from kith.sync.modlog import moderation_log, organizer_advice
from kith.sync.precheck import check_action, check_text, explain
from kith.sync.relaytoken import RelayToken
from kith.sync.reports import REPORT_KIND, report_body, report_views
from kith.sync.reviews import open_review_reason, review_details
from kith.sync.views import display_name, private_checkins

MAX_INVITE_S = 366 * 86400
"""The longest an invite can stay valid (`kith invite --expires never` has no expiry)."""

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle
    from kith.p2pnet.node import Node

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

# param types: "text", "text?", "bool", "int", "int?", "id" (32-byte hex), "id?", "member", "any";
# a name starting with "~" is a sealed content field (docs/PROTOCOL.md, sealed content).
ACTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "post": ("msg.post", {"~text": "text", "~content_warning": "text?", "reply_to": "id?", "urgent": "bool"}),
    "edit": ("msg.edit", {"target": "id", "~text": "text", "~content_warning": "text?"}),
    "delete": ("msg.delete", {"target": "id"}),
    "react": ("msg.react", {"target": "id", "emoji": "text", "on": "bool=true"}),
    "checkin": ("checkin", {"status": "text", "~note": "text?"}),
    "profile": ("profile.set", {"display_name": "text", "pronouns": "text?", "skills": "texts"}),
    "pledge": (
        "aid.pledge",
        {
            "category": "text",
            "~description": "text",
            "amount": "int?",
            "unit": "text?",
            "expires": "int?",
            "monthly": "text?",
        },
    ),
    "request": (
        "aid.request",
        {"category": "text", "~description": "text", "amount": "int?", "unit": "text?", "expires": "int?"},
    ),
    "match": ("aid.match", {"pledge": "id", "request": "id"}),
    "fulfil": ("aid.fulfil", {"request": "id"}),
    "withdraw": ("aid.withdraw", {"item": "id"}),
    "vote": ("proposal.vote", {"proposal": "id", "choice": "text", "reason": "text?"}),
    "proposal.withdraw": ("proposal.withdraw", {"proposal": "id"}),
    "contribute": ("fund.contribute", {"amount": "int", "currency": "text", "note": "text?", "monthly": "text?"}),
    "receipt": ("fund.receipt", {"contribution": "id", "month": "text?"}),
    "contribution.stop": ("fund.stop", {"contribution": "id", "last": "text"}),
    "hide": ("msg.hide", {"target": "id", "reason": "text"}),
    "disburse": ("fund.disburse", {"proposal": "id", "note": "text?"}),
    "event.create": ("event.create", {"~title": "text", "starts": "int", "~place_hint": "text?", "~text": "text?"}),
    "rsvp": ("event.rsvp", {"event": "id", "answer": "text"}),
    "relay.add": ("relay.add", {"address": "text"}),
    "relay.remove": ("relay.remove", {"address": "text"}),
    "member.remove": ("member.remove", {"member": "member", "reason": "text?"}),
    "role.grant": ("role.grant", {"member": "member", "role": "text"}),
    "role.revoke": ("role.revoke", {"member": "member", "role": "text"}),
    "role.handover": ("role.handover", {"member": "member"}),
}


OPTIONAL_WIRE_KEYS = frozenset({"monthly", "month"})
"""Body keys left out when null (docs/OPS.md §4, optional keys): without them an op is
byte for byte the op it was before they existed."""


def _bad(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


def convert_param(name: str, spec: str, params: dict[str, Any]) -> Any:
    base, _, default = spec.partition("=")
    optional = base.endswith("?")
    base = base.rstrip("?")
    if name not in params or params[name] is None:
        if default:
            return default == "true"
        if optional:
            return None
        if base == "bool":
            return False
        if base == "texts":
            return []
        raise _bad(f"missing parameter {name!r}")
    value = params[name]
    if base == "text":
        if not isinstance(value, str):
            raise _bad(f"{name} must be text")
        return value
    if base == "texts":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"{name} must be a list of text")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise _bad(f"{name} must be true or false")
        return value
    if base == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(f"{name} must be a whole number")
        return value
    if base in ("id", "member"):
        if not isinstance(value, str):
            raise _bad(f"{name} must be a hex id")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise _bad(f"{name} is not valid hex") from None
        if len(raw) != 32:
            raise _bad(f"{name} must be 32 bytes (64 hex digits)")
        return raw
    if base == "any":
        return value
    raise AssertionError(f"unknown param type {spec}")


def to_json(value: Any) -> Any:
    """Views (dataclasses, named tuples, bytes) as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: to_json(v) for k, v in value._asdict().items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {(k.hex() if isinstance(k, bytes) else str(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    return value


def build_methods(node: Node) -> dict[str, Handler]:
    methods: dict[str, Handler] = {}

    def method(name: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            methods[name] = func
            return func

        return register

    def member_circles():
        if node.circles is None:
            raise UsageError("this node is a relay: it has no circles")
        return node.circles

    def circle_of(params: dict[str, Any]) -> Circle:
        ref = params.get("circle")
        if not isinstance(ref, str) or not ref:
            raise _bad("missing parameter 'circle' (a circle id or name)")
        return member_circles().get(ref)

    # --- node-wide ------------------------------------------------------------------

    @method("status")
    async def status(params: dict[str, Any]) -> Any:
        assert node.net is not None
        peers = []
        for state in node.peers.values():
            last = state.last_sync
            peers.append(
                {
                    "peer": state.peer,
                    "connected_at": state.connected_at,
                    "received": state.received,
                    "last_sync": None
                    if last is None
                    else {
                        "finished": last.finished,
                        "received": last.envelopes_new,
                        "sent": last.envelopes_sent,
                        "rounds": last.rounds,
                        "error": last.error,
                    },
                }
            )
        circles = []
        if node.circles is not None:
            for circle in node.circles.circles.values():
                circles.append(
                    {
                        "id": circle.id.hex(),
                        "name": circle.keys.label,
                        "topic": circle.handle.hex(),
                        "ops": circle.replica.state.applied_count,
                        "envelopes": sum(len(node.indexes.get(t, ())) for t in circle.topics()),
                        "state_hash": circle.replica.state_hash().hex(),
                        "last_sync": _latest(node.topic_synced.get(t) for t in circle.topics()),
                        "relays": node.relay_reach(circle),
                        "relay_reachable": any(r["connected"] for r in node.relay_reach(circle)),
                        "advice": organizer_advice(circle.replica.state),
                    }
                )
        relay_topics = [
            {
                "topic": t.hex(),
                "label": entry.label,
                "envelopes": sum(len(node.indexes.get(w, ())) for w in node.relay_topic_wires(t)),
                "bytes": sum(node.topic_bytes[w] for w in node.relay_topic_wires(t)),
                "quota_bytes": entry.quota_bytes,
                "last_sync": _latest(node.topic_synced.get(w) for w in node.relay_topic_wires(t)),
            }
            for t, entry in node.relay_topics.items()
        ]
        gossip = node.gossip.stats if node.gossip else None
        return {
            "mode": "relay" if node.is_relay else "member",
            "peer_id": node.net.peer_id,
            "addresses": node.net.listen_addresses(),
            "uptime_s": round(time.time() - node.stats.started, 1),
            "peers": sorted(peers, key=lambda p: p["peer"]),
            "circles": circles,
            "relay_topics": relay_topics,
            "accepted": node.stats.accepted,
            "refused": dict(node.gate.refused + node.stats.refused),
            "syncs": node.stats.syncs,
            "sync_errors": node.stats.sync_errors,
            "gossip": None
            if gossip is None
            else {
                "published": gossip.published_envelopes,
                "received": gossip.received_envelopes,
                "rejected_messages": dict(gossip.rejected_messages)
                | (
                    {"from a peer that proved no key for the topic": node.net.refused_unproved}
                    if node.net.refused_unproved
                    else {}
                )
                | ({"signed (names an origin)": node.net.refused_signed} if node.net.refused_signed else {}),
                "dropped_publishes": gossip.dropped_publishes,
            },
        }

    @method("stop")
    async def stop(params: dict[str, Any]) -> Any:
        node.stop_soon()  # after this reply has gone out
        return {"stopping": True}

    @method("connect")
    async def connect(params: dict[str, Any]) -> Any:
        address = convert_param("address", "text", params)
        peer = await node.connect(address)
        return {"peer": peer}

    @method("disconnect")
    async def disconnect(params: dict[str, Any]) -> Any:
        peer = convert_param("peer", "text", params)
        assert node.net is not None
        await node.net.disconnect(peer)
        return {"peer": peer}

    @method("block")
    async def block(params: dict[str, Any]) -> Any:
        """Refuse a peer for ``seconds`` (drop, refuse and stop dialing it); ops and tests."""
        peer = convert_param("peer", "text", params)
        seconds = params.get("seconds", 600)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
            raise _bad("seconds must be a number of seconds, more than 0 and at most 86400")
        node.block(peer, float(seconds))
        return {"peer": peer, "until": node.guard.until_wall_clock(peer)}

    @method("unblock")
    async def unblock(params: dict[str, Any]) -> Any:
        peer = convert_param("peer", "text", params)
        node.guard.unblock(peer)
        return {"peer": peer}

    @method("sync")
    async def sync(params: dict[str, Any]) -> Any:
        peers = [params["peer"]] if isinstance(params.get("peer"), str) else list(node.peers)
        results = []
        for peer in peers:
            stats = await node.sync_now(peer)
            results.append(
                {"peer": peer, "received": stats.envelopes_new, "sent": stats.envelopes_sent, "error": stats.error}
            )
        return {"synced": results}

    # --- member: circles and queries ------------------------------------------------

    @method("whoami")
    async def whoami(params: dict[str, Any]) -> Any:
        identity = member_circles().identity
        card = identity.card()
        return {"name": card.name, "member_id": card.member_id.hex(), "fingerprint": card.fingerprint}

    @method("relays")
    async def relays(params: dict[str, Any]) -> Any:
        """The relays a circle lists (relay.add), and whether this node reaches each now."""
        return node.relay_reach(circle_of(params))

    @method("circles")
    async def circles(params: dict[str, Any]) -> Any:
        listing = []
        for circle in member_circles().circles.values():
            state = circle.replica.state
            info = state.info.get("circle")
            listing.append(
                {
                    "id": circle.id.hex(),
                    "name": info.name if info else circle.keys.label,
                    "members": len(state.members),
                    "ops": state.applied_count,
                    "urgent": sum(
                        1 for i, m in state.messages.items() if m.urgent and not m.deleted and i not in state.hidden
                    ),
                    "am_member": member_circles().identity.member_id in state.members,
                }
            )
        return sorted(listing, key=lambda c: c["name"].lower())

    @method("circle.create")
    async def circle_create(params: dict[str, Any]) -> Any:
        name = convert_param("name", "text", params)
        description = convert_param("description", "text?", params) or ""
        confirm_joins = convert_param("confirm_joins", "bool", params)
        # Checked before anything is made: a refused genesis would leave an empty circle behind.
        check_text(name, "name", schema.MAX_NAME_CHARS)
        check_text(description or "-", "description", schema.MAX_DESCRIPTION_CHARS, short=False)
        try:
            circle, envelope = member_circles().create_circle(name, description, confirm_joins=confirm_joins)
        except Malformed as exc:
            raise UsageError(f"cannot create the circle: {exc}") from exc
        assert node.lifecycle is not None
        node.lifecycle.install_keys(circle)
        await node.serve_topic(envelope.topic)
        node.publish_nowait(envelope)
        # Introduce ourselves, so the circle shows a name rather than an id; and hold the
        # fund's books until someone else does (an organizer may grant and revoke it).
        identity = member_circles().identity
        if identity.name != DEFAULT_NAME and identity.member_id not in circle.replica.state.profiles:
            await author(circle, "profile.set", {"display_name": identity.name, "pronouns": None, "skills": []})
        await author(circle, "role.grant", {"member": identity.member_id, "role": "treasurer"})
        return {"id": circle.id.hex(), "name": name, "topic": circle.handle.hex()}

    @method("views")
    async def views(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        limit = params.get("feed_limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 10_000:
            raise _bad("feed_limit must be 1..10000")
        built = circle.replica.views(now=int(node.clock()), feed_limit=limit, reader=member_circles().reader(circle))
        wanted = params.get("only")
        result = to_json(built)
        verified = node.keystore.data.extra.get("verified", {})
        cards = circle.replica.state.cards
        for entry in result["members"]:
            member = bytes.fromhex(entry["id"])
            entry["verified"] = member in verified and verified[member] == cards.get(member)
            entry["has_current_key"] = member in circle.replica.state.holders.get(
                circle.replica.state.info.get("epoch", b""), {}
            )
        result["id"] = circle.id.hex()
        result["me"] = member_circles().identity.member_id.hex()
        if node.lifecycle is not None:
            notes = node.lifecycle.private_checkins.get(circle.id, {}).values()
            rows = [(bytes.fromhex(n["id"]), bytes.fromhex(n["member"]), n["status"], n["note"], n["ts"])
                    for n in notes]  # fmt: skip
            result["private_checkins"] = to_json(private_checkins(circle.replica.state, rows))
            # Reports reach organizers' nodes only (sealed to them): everyone else gets [].
            book = node.lifecycle.reports.get(circle.id)
            reports = (
                report_views(circle.replica.state, book.reports.values(), member_circles().reader(circle))
                if book is not None and _organizer(circle, member_circles().identity.member_id)
                else ()
            )
            result["reports"] = to_json(reports)
        result["allocations"] = to_json(allocations_view(circle, member_circles().identity))
        if isinstance(wanted, list):
            result = {k: v for k, v in result.items() if k in wanted or k in ("id", "me", "name")}
        return result

    @method("modlog")
    async def modlog(params: dict[str, Any]) -> Any:
        """The moderation log (sync/modlog.py), newest last; a review's reason for organizers."""
        circle = circle_of(params)
        state = circle.replica.state
        me = member_circles().identity
        entries = []
        for entry in moderation_log(state, circle.replica.ops()):
            row = to_json(entry)
            row["target_name"] = display_name(state, entry.target)
            row["actor_name"] = display_name(state, entry.actor)
            proposal = state.proposals.get(entry.proposal) if entry.proposal is not None else None
            if proposal is not None and isinstance(proposal.details, ReviewDetails):
                row["reason"] = open_review_reason(state, proposal.details, me)
            entries.append(row)
        return {"id": circle.id.hex(), "entries": entries, "advice": organizer_advice(state)}

    @method("state_hash")
    async def state_hash(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        return {"state_hash": circle.replica.state_hash().hex(), "ops": circle.replica.state.applied_count}

    @method("circle.relay_token")
    async def circle_relay_token(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        label = convert_param("label", "text?", params) or f"circle {circle.handle.hex()[:8]}"
        quota = params.get("quota_bytes")
        token = RelayToken(
            circle.handle,
            label,
            {epoch: relay_key(key) for epoch, key in circle.keys.epochs.items()},
            grant_keys={epoch: grant_signing_keypair(key)[0] for epoch, key in circle.keys.epochs.items()},
            **({"quota_bytes": quota} if isinstance(quota, int) and not isinstance(quota, bool) else {}),
        )
        return {"token": token.encode(), "topic": circle.handle.hex()}

    # --- member: actions ------------------------------------------------------------

    def make_action(kind: str, spec: dict[str, str]) -> Handler:
        async def action(params: dict[str, Any]) -> Any:
            circle = circle_of(params)
            resolved = resolve_ids(circle, spec, params)
            body: dict[str, Any] = {}
            content: dict[str, Any] = {}
            for name, type_spec in spec.items():
                field = name.lstrip("~")
                target = content if name.startswith("~") else body
                target[field] = convert_param(field, type_spec, resolved)
            if content:
                body["content"] = content
            for key in OPTIONAL_WIRE_KEYS & body.keys():
                if body[key] is None:
                    del body[key]
            check_action(circle.replica.state, member_circles().identity.member_id, kind, body, now=node.clock())
            if params.get("private") is True and kind in ("aid.request", "checkin"):
                # Only the organizers will know who asked and why (docs/PROTOCOL.md §12).
                plain = {**{k: v for k, v in body.items() if k != "content"}, **content}
                private_kind = "private.request" if kind == "aid.request" else "private.checkin"
                envelope_id = lifecycle().private_message(circle, private_kind, plain)
                return {"id": None, "private": envelope_id.hex(), "rejected": None}
            if kind == "aid.request":
                body["private"] = None
            return await author(circle, kind, body)

        return action

    async def author(circle: Circle, kind: str, body: dict[str, Any]) -> Any:
        _envelope, result = member_circles().author(circle, kind, body)  # stored, indexed and gossiped
        op = result.applied[0] if result.applied else None
        rejected = dict(result.rejected)
        reason = rejected.get(op.id) if op is not None else None
        node.emit("ops", {"circle": circle.id.hex(), "ops": [{"id": op.id.hex(), "kind": kind}] if op else []})
        return {"id": op.id.hex() if op else None, "rejected": reason}

    for name, (kind, spec) in ACTIONS.items():
        methods[name] = make_action(kind, spec)

    @method("post_many")
    async def post_many(params: dict[str, Any]) -> Any:
        """Post several messages in one durable write (imports, scripts, benchmarks)."""
        circle = circle_of(params)
        texts = convert_param("texts", "texts", params)
        if not 1 <= len(texts) <= 1000:
            raise _bad("texts must hold 1 to 1000 messages")
        items = [
            ("msg.post", {"content": {"text": t, "content_warning": None}, "reply_to": None, "urgent": False})
            for t in texts
        ]
        _envelopes, result = member_circles().author_many(circle, items)  # stored, indexed and gossiped
        rejected = dict(result.rejected)
        ops = [op for op in result.applied]
        node.emit("ops", {"circle": circle.id.hex(), "ops": [{"id": op.id.hex(), "kind": "msg.post"} for op in ops]})
        return {"ids": [op.id.hex() for op in ops], "rejected": [rejected.get(op.id) for op in ops]}

    @method("propose")
    async def propose(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        kind = convert_param("kind", "text", params)
        title = convert_param("title", "text", params)
        text = convert_param("text", "text?", params) or ""
        if kind == "spend":
            details: Any = {
                "amount": convert_param("amount", "int", params),
                "currency": convert_param("currency", "text", params),
                "recipient": convert_param("recipient", "member", params)
                if _looks_like_id(params.get("recipient"))
                else convert_param("recipient", "text", params),
                "purpose": convert_param("purpose", "text", params),
            }
        elif kind == "remove":
            params = resolve_ids(circle, {"member": "member"}, params)
            details = {"member": convert_param("member", "member", params)}
        elif kind in ("organizer", "review"):
            params = resolve_ids(circle, {"member": "member"}, params)
            member = convert_param("member", "member", params)
            details = {"member": member}
            if kind == "review":
                reason = convert_param("reason", "text", params)
                try:
                    details = review_details(circle.replica.state, member, reason)
                except Malformed as exc:
                    raise _bad(str(exc)) from None
        elif kind == "charter":
            # Only what changes is asked for; the rest is the charter in force, checked here
            # so a mistake is one line and not a rejected op in everyone's list.
            details = amend_charter(circle.replica.state.info["charter"], convert_param("charter", "any", params))
        elif kind == "general":
            details = {}
        else:
            raise _bad("kind must be spend, charter, remove, general, review or organizer")
        body = {"kind": kind, "title": title, "text": text, "details": details}
        closes_s = params.get("closes_s")
        if closes_s is not None:
            if not isinstance(closes_s, int) or isinstance(closes_s, bool):
                raise _bad("closes_s must be a whole number of seconds")
            body["closes"] = closes_s
        check_action(circle.replica.state, member_circles().identity.member_id, "proposal.create", body)
        return await author(circle, "proposal.create", body)

    # --- membership lifecycle -------------------------------------------------------

    def lifecycle():
        if node.lifecycle is None:
            raise UsageError("this node is a relay: it has no circles")
        return node.lifecycle

    @method("report")
    async def report(params: dict[str, Any]) -> Any:
        """Report a post or a member to the organizers, sealed to them (docs/PROTOCOL.md §12)."""
        circle = circle_of(params)
        resolved = resolve_ids(circle, {"post": "id?", "member": "member?"}, params)
        post = convert_param("post", "id?", resolved)
        member = convert_param("member", "member?", resolved)
        reason = convert_param("reason", "text", params)
        if (post is None) == (member is None):
            raise _bad("report either a post (post) or a member (member), not both or neither")
        state = circle.replica.state
        if member is not None and member not in state.members:
            raise UsageError("that person is not a member of this circle")
        try:
            body = report_body(post=post, member=member, reason=reason)
        except schema.InvalidBody as exc:
            raise UsageError(explain(exc)) from None
        envelope_id = lifecycle().private_message(circle, REPORT_KIND, body)
        return {"id": None, "private": envelope_id.hex(), "rejected": None}

    @method("reports")
    async def reports(params: dict[str, Any]) -> Any:
        """The reports sealed to this organizer, with who reported what and why."""
        circle = circle_of(params)
        state = circle.replica.state
        if not _organizer(circle, member_circles().identity.member_id):
            raise UsageError("only organizers receive reports, and you are not one in this circle")
        book = lifecycle().report_book(circle)
        views = report_views(state, book.reports.values(), member_circles().reader(circle))
        return {"reports": to_json(views), "dropped": dict(sorted(book.dropped.items()))}

    @method("invite.create")
    async def invite_create(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        uses = params.get("uses", 1)
        if not isinstance(uses, int) or isinstance(uses, bool) or not 1 <= uses <= 1000:
            raise _bad("uses must be 1..1000")
        expires_s = params.get("expires_s", 7 * 86400)
        # `not 0 < x <= max` also refuses NaN and Infinity (JSON parsers accept both).
        if expires_s is not None and (
            not isinstance(expires_s, (int, float)) or isinstance(expires_s, bool) or not 0 < expires_s <= MAX_INVITE_S
        ):
            raise _bad("expires_s must be 1 s to 366 days, or null for no expiry")
        code = lifecycle().create_invite(circle, uses=uses, expires_s=expires_s)
        text = code.encode()
        from kith.p2pnet.qr import qr_text

        return {
            "code": text,
            "qr": qr_text(text),
            "invite": code.invite_id.hex(),
            "expires": code.expires,
            "uses": uses,
            "addresses": list(code.addresses),
        }

    @method("invites")
    async def invites(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        state = circle.replica.state
        return [
            {
                "invite": invite_ref.hex(),
                "author": invite.author.hex(),
                "uses": invite.uses,
                "used": invite.used,
                "expires": invite.expires,
                "revoked": invite.revoked_by is not None,
            }
            for invite_ref, invite in sorted(state.invites.items(), key=lambda item: item[1].lamport)
        ]

    @method("invite.revoke")
    async def invite_revoke(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        prefix = convert_param("invite", "text", params).lower()
        matches = [i for i in circle.replica.state.invites if i.hex().startswith(prefix)]
        if len(matches) != 1:
            raise UsageError("no single invite starts with that id; 'kith invites CIRCLE' lists them")
        result = await author(circle, "invite.revoke", {"invite": matches[0]})
        lifecycle().invite_closed(circle, matches[0])
        return result

    @method("join")
    async def join(params: dict[str, Any]) -> Any:
        return await lifecycle().join(convert_param("code", "text", params))

    @method("joins")
    async def joins(params: dict[str, Any]) -> Any:
        return lifecycle().pending_joins()

    @method("requests")
    async def requests(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        return [
            {
                "member": pending.request.card.member_id.hex(),
                "name": pending.request.card.name,
                "fingerprint": pending.request.card.fingerprint,
                "safety_number": safety_number(member_circles().identity.card(), pending.request.card),
                "invite": pending.request.invite.hex(),
                "received": pending.received,
            }
            for pending in lifecycle().pending_requests(circle)
        ]

    @method("approve")
    async def approve(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        prefix = convert_param("member", "text", params).lower()
        pending = [p for p in lifecycle().pending_requests(circle) if p.request.card.member_id.hex().startswith(prefix)]
        if len(pending) != 1:
            raise UsageError("no single pending request matches; 'kith requests CIRCLE' lists them")
        signed = lifecycle().approve(circle, pending[0].request, vouch=convert_param("vouch", "text?", params))
        return {"id": signed.id.hex(), "member": pending[0].request.card.member_id.hex()}

    @method("member.add")
    async def member_add(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        card_hex = convert_param("card", "text", params)
        try:
            card = bytes.fromhex(card_hex)
        except ValueError:
            raise _bad("card must be the hex card that 'kith whoami' prints") from None
        signed = lifecycle().add_by_card(circle, card, vouch=convert_param("vouch", "text?", params))
        return {"id": signed.id.hex(), "rejected": None}

    @method("rotate")
    async def rotate(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        state = circle.replica.state
        me = member_circles().identity.member_id
        if me not in state.members or "organizer" not in state.members[me].roles:
            raise UsageError("only an organizer rotates a circle's key")
        return {"epoch": lifecycle().rotate(circle).hex()}

    @method("member.card")
    async def member_card(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        resolved = resolve_ids(circle, {"member": "member"}, params)
        member = convert_param("member", "member", resolved)
        return member_card_info(node, circle, member)

    @method("verify")
    async def verify(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        resolved = resolve_ids(circle, {"member": "member"}, params)
        member = convert_param("member", "member", resolved)
        info = member_card_info(node, circle, member)
        verified = node.keystore.data.extra.setdefault("verified", {})
        verified[member] = circle.replica.state.cards[member]
        node.keystore.save()
        info["verified"] = True
        return info

    @method("panic")
    async def panic(params: dict[str, Any]) -> Any:
        """Stop writing to the disk and answer; then warn (if asked), wipe and exit within the bound."""
        warn = convert_param("warn", "bool", params)
        return await panic_node(node, warn=warn)

    # --- relay ----------------------------------------------------------------------

    @method("relay.allow")
    async def relay_allow(params: dict[str, Any]) -> Any:
        if not node.is_relay:
            raise UsageError("only a relay node serves topics by token; this node is a member node")
        token = RelayToken.decode(convert_param("token", "text", params))
        entry = allow_relay_topic(node.keystore.data.extra, token)
        node.keystore.save()
        for topic in node.serve_relay_topic(entry):
            await node.serve_topic(topic)
        return {"topic": token.topic.hex(), "label": token.label, "epochs": len(entry.relay_keys)}

    methods.update(allocation_methods(node, circle_of, author, lifecycle))
    return methods


def allocation_methods(node: Node, circle_of: Any, author: Any, lifecycle: Any) -> dict[str, Handler]:
    """Asking the fund under the charter's allocation rules, paying, and the allocations view."""

    async def ask_fund(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        category = convert_param("category", "text", params)
        amount = convert_param("amount", "int", params)
        note = convert_param("note", "text?", params) or ""
        return lifecycle().alloc.ask(circle, category, amount, note)

    async def pay_ask(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        params = resolve_ids(circle, {"ask": "id"}, params)
        ask_id = convert_param("ask", "id", params)
        note = convert_param("note", "text?", params)
        state = circle.replica.state
        me = node.circles.identity.member_id  # type: ignore[union-attr]
        ask = state.asks.get(ask_id)
        if ask is None:
            raise UsageError("there is no such ask in this circle (see 'kith allocations')")
        member = state.members.get(me)
        if member is None or TREASURER not in member.roles:
            raise UsageError("only a treasurer may pay an ask")
        if ask.outcome != alloc_kind.ALLOCATED:
            raise UsageError("that ask was not allocated money (see 'kith allocations')")
        if ask.paid_by is not None:
            raise UsageError("that ask was already paid")
        if ask.amount > state.balances.get(ask.currency, 0):
            raise UsageError("the fund's confirmed balance is too small to pay it: confirm contributions first")
        if note is not None:
            check_text(note, "note", schema.MAX_NOTE_CHARS, short=False)
        return await author(circle, "alloc.pay", {"ask": ask_id, "note": note})

    async def allocations(params: dict[str, Any]) -> Any:
        circle = circle_of(params)
        return to_json(allocations_view(circle, node.circles.identity))  # type: ignore[union-attr]

    return {"ask_fund": ask_fund, "pay_ask": pay_ask, "allocations": allocations}


def _organizer(circle: Circle, member: bytes) -> bool:
    record = circle.replica.state.members.get(member)
    return record is not None and ORGANIZER in record.roles


def _latest(times: Any) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def allow_relay_topic(extra: dict[str, Any], token: RelayToken) -> RelayTopic:
    """Merge a relay token into a relay keystore's topic table; returns the entry."""
    from kith.p2pnet.node import RELAY_TOPICS_KEY

    table = extra.setdefault(RELAY_TOPICS_KEY, {})
    existing = table.get(token.topic)
    if existing is not None:
        entry = RelayTopic.from_map(token.topic, existing)
        # The operator handed us this token, so it is trusted over grants learned since.
        entry.relay_keys.update(token.relay_keys)
        entry.grant_keys.update(token.grant_keys)
        entry.label = token.label
        entry.quota_bytes = token.quota_bytes
    else:
        entry = RelayTopic(token.topic, token.label, dict(token.relay_keys), token.quota_bytes, dict(token.grant_keys))
    table[token.topic] = entry.to_map()
    return entry


MIN_PREFIX = 6


def member_card_info(node: Node, circle: Circle, member: bytes) -> dict[str, Any]:
    """A member's fingerprint and the safety number two people compare to verify each other."""
    from kith.identity.keys import fingerprint, safety_number_of_keys

    state = circle.replica.state
    if member not in state.members or member not in state.cards:
        raise UsageError("that person is not a member of this circle")
    assert node.circles is not None
    me = node.circles.identity
    verified = node.keystore.data.extra.get("verified", {})
    return {
        "member": member.hex(),
        "fingerprint": fingerprint(member, state.cards[member]),
        "safety_number": safety_number_of_keys(me.sign_public, me.dh_public, member, state.cards[member]),
        "verified": verified.get(member) == state.cards[member],
    }


def resolve_ids(circle: Circle, spec: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """Let people type short id prefixes (as listings show them): expand them to full ids."""
    state = circle.replica.state
    resolved = dict(params)
    for name, type_spec in spec.items():
        base = type_spec.partition("=")[0].rstrip("?")
        value = params.get(name)
        if base not in ("id", "member") or not isinstance(value, str) or len(value) >= 64:
            continue
        prefix = value.lower()
        is_hex = all(c in "0123456789abcdef" for c in prefix)
        if base == "member" and not (is_hex and len(prefix) >= MIN_PREFIX):
            resolved[name] = member_by_name(state, value).hex()
            continue
        if len(prefix) < MIN_PREFIX or not is_hex:
            raise _bad(f"{name} must be an id or at least {MIN_PREFIX} hex digits of one")
        if base == "member":
            tables: list[Any] = [state.members]
        else:
            tables = [state.messages, state.checkins, state.aid, state.proposals, state.contributions, state.events,
                      state.asks]  # fmt: skip
        matches = {key for table in tables for key in table if key.hex().startswith(prefix)}
        if not matches:
            raise UsageError(f"no {name} starting with {value} in this circle")
        if len(matches) > 1:
            raise UsageError(f"{value} matches several items; give more digits")
        resolved[name] = matches.pop().hex()
    return resolved


def _looks_like_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def member_by_name(state: Any, name: str) -> bytes:
    """The one member whose display name is ``name`` (ignoring case), as listings show it."""
    wanted = name.strip().casefold()
    matches = [
        member
        for member in state.members
        if (profile := state.profiles.get(member)) is not None and profile.display_name.casefold() == wanted
    ]
    if not matches:
        raise UsageError(f"no member named {name!r} in this circle; 'kith members CIRCLE' lists them")
    if len(matches) > 1:
        raise UsageError(f"several members are named {name!r}; give their id (from 'kith members CIRCLE')")
    return matches[0]
