"""The control API's methods: one per user action and query (docs/API.md).

Each method's parameters are declared once, in kith.p2pnet.actions; a request is untrusted
input like any other, so every handler gets them only after `parse_method` has checked
them (type, range, unknown keys) and, in a circle, short id prefixes and member names have
been expanded. Actions map the parsed parameters onto an op body: the node prechecks it
against its copy of the circle, authors the op with the member's key, folds, stores and
gossips it; the reply names the new op's id. Queries return the circle views as JSON
(bytes as hex). The op body is checked again by the fold.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from kith.identity.errors import LocalProtocolError, Malformed, UsageError
from kith.identity.keyring import RelayTopic
from kith.identity.keys import DEFAULT_NAME, safety_number
from kith.p2pnet import actions as a
from kith.p2pnet.actions import ACTIONS, MAX_INVITE_S, METHODS, bad, id_params, op_body, parse_method
from kith.p2pnet.allocation import allocations_view
from kith.p2pnet.idrefs import looks_like_id, resolve_ids
from kith.p2pnet.panic import panic_node
from kith.sync.envelope import relay_key
from kith.sync.invites import grant_signing_keypair
from kith.sync.kinds import alloc as alloc_kind
from kith.sync.kinds import schema
from kith.sync.kinds.circle import amend_charter
from kith.sync.kinds.records import ORGANIZER, TREASURER, ReviewDetails
from kith.sync.modlog import moderation_log, organizer_advice
from kith.sync.opkind import OpKind
from kith.sync.precheck import check_action, check_text, explain
from kith.sync.relaytoken import RelayToken
from kith.sync.reports import REPORT_KIND, report_body, report_views
from kith.sync.reviews import open_review_reason, review_details
from kith.sync.views import display_name, private_checkins

if TYPE_CHECKING:
    from kith.p2pnet.circles import Circle, MemberCircles
    from kith.p2pnet.lifecycle import Lifecycle
    from kith.p2pnet.node import Node
    from kith.p2pnet.syncproto import SyncStats

__all__ = ["MAX_INVITE_S", "allow_relay_topic", "build_methods", "to_json"]

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
NodeWide = Callable[[Any], Awaitable[Any]]
InCircle = Callable[["Circle", Any], Awaitable[Any]]

SYNC_AT_ONCE = 8
"""Sessions a `sync` request runs at once: enough that a slow peer does not hold up the
others, few enough that a relay asked to sync with all its members is not swamped."""


def _synced(peer: str, stats: SyncStats) -> dict[str, Any]:
    return {"peer": peer, "received": stats.envelopes_new, "sent": stats.envelopes_sent, "error": stats.error}


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
    """Every control method the node serves (the control server adds ``subscribe``)."""
    return ControlMethods(node).table()


class ControlMethods:
    """The handlers, each given its checked parameters (and its circle, if it takes one)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def table(self) -> dict[str, Handler]:
        node_wide: dict[str, NodeWide] = {
            "status": self.status,
            "stop": self.stop,
            "connect": self.connect,
            "disconnect": self.disconnect,
            "block": self.block,
            "unblock": self.unblock,
            "sync": self.sync,
            "panic": self.panic,
            "whoami": self.whoami,
            "circles": self.circles,
            "circle.create": self.circle_create,
            "join": self.join,
            "joins": self.joins,
            "relay.allow": self.relay_allow,
        }
        in_circle: dict[str, InCircle] = {
            "relays": self.relays,
            "views": self.views,
            "modlog": self.modlog,
            "state_hash": self.state_hash,
            "circle.relay_token": self.circle_relay_token,
            "post_many": self.post_many,
            "propose": self.propose,
            "report": self.report,
            "reports": self.reports,
            "invite.create": self.invite_create,
            "invites": self.invites,
            "invite.revoke": self.invite_revoke,
            "requests": self.requests,
            "approve": self.approve,
            "member.add": self.member_add,
            "rotate": self.rotate,
            "member.card": self.member_card,
            "verify": self.verify,
            "ask_fund": self.ask_fund,
            "pay_ask": self.pay_ask,
            "allocations": self.allocations,
        }
        for name, method in ACTIONS.items():
            in_circle[name] = self._action(method.kind or "")
        methods = {name: self._node_wide(name, func) for name, func in node_wide.items()}
        methods |= {name: self._in_circle(name, func) for name, func in in_circle.items()}
        if methods.keys() != METHODS.keys():
            raise LocalProtocolError("kith.p2pnet.actions.METHODS and the handlers disagree")
        return methods

    # --- dispatch -----------------------------------------------------------------------

    def _node_wide(self, name: str, func: NodeWide) -> Handler:
        async def handle(params: dict[str, Any]) -> Any:
            return await func(parse_method(name, params))

        return handle

    def _in_circle(self, name: str, func: InCircle) -> Handler:
        ids = id_params(METHODS[name].params)

        async def handle(params: dict[str, Any]) -> Any:
            circle = self.circle_of(params)
            return await func(circle, parse_method(name, resolve_ids(circle, ids, params)))

        return handle

    def member_circles(self) -> MemberCircles:
        if self.node.circles is None:
            raise UsageError("this node is a relay: it has no circles")
        return self.node.circles

    def lifecycle(self) -> Lifecycle:
        if self.node.lifecycle is None:
            raise UsageError("this node is a relay: it has no circles")
        return self.node.lifecycle

    def circle_of(self, params: dict[str, Any]) -> Circle:
        ref = params.get("circle")
        if not isinstance(ref, str) or not ref:
            raise bad("missing parameter 'circle' (a circle id or name)")
        return self.member_circles().get(ref)

    def me(self) -> bytes:
        return self.member_circles().identity.member_id

    # --- node-wide ----------------------------------------------------------------------

    async def status(self, args: a.NoParams) -> Any:
        node = self.node
        net = node.net
        peers = [
            _peer_row(state, net.connection_count(state.peer), net.outbound_queue(state.peer))
            for state in node.peers.values()
        ]
        circles = [] if node.circles is None else [self._circle_row(c) for c in node.circles.circles.values()]
        return {
            "mode": "relay" if node.is_relay else "member",
            "peer_id": node.net.peer_id,
            "addresses": node.net.listen_addresses(),
            "uptime_s": round(time.time() - node.stats.started, 1),
            "peers": sorted(peers, key=lambda p: p["peer"]),
            "circles": circles,
            "relay_topics": self._relay_topic_rows(),
            "accepted": node.stats.accepted,
            "refused": dict(node.gate.refused + node.stats.refused),
            "syncs": node.stats.syncs,
            "sync_errors": node.stats.sync_errors,
            "gossip": self._gossip_row(),
        }

    def _circle_row(self, circle: Circle) -> dict[str, Any]:
        node = self.node
        return {
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

    def _relay_topic_rows(self) -> list[dict[str, Any]]:
        node = self.node
        return [
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

    def _gossip_row(self) -> dict[str, Any] | None:
        node = self.node
        gossip = node.gossip.stats
        rejected = dict(gossip.rejected_messages)
        if node.net.refused_unproved:
            rejected["from a peer that proved no key for the topic"] = node.net.refused_unproved
        if node.net.refused_signed:
            rejected["signed (names an origin)"] = node.net.refused_signed
        if node.net.refused_topics:
            rejected["names other topics"] = node.net.refused_topics
        return {
            "published": gossip.published_envelopes,
            "received": gossip.received_envelopes,
            "rejected_messages": rejected,
            "dropped_publishes": gossip.dropped_publishes,
            "held_back": gossip.held_back,
            # The longest per-peer outbound queue: our own publishing waits while it is at
            # gossip.BACKLOG_HIGH_WATER or more.
            "outbound_backlog": node.net.outbound_backlog(),
        }

    async def stop(self, args: a.NoParams) -> Any:
        self.node.stop_soon()  # after this reply has gone out
        return {"stopping": True}

    async def connect(self, args: a.Address) -> Any:
        return {"peer": await self.node.connect(args.address)}

    async def disconnect(self, args: a.Peer) -> Any:
        await self.node.net.disconnect(args.peer)
        return {"peer": args.peer}

    async def block(self, args: a.Block) -> Any:
        """Refuse a peer for ``seconds`` (drop, refuse and stop dialing it); ops and tests."""
        self.node.block(args.peer, float(args.seconds))
        return {"peer": args.peer, "until": self.node.guard.until_wall_clock(args.peer)}

    async def unblock(self, args: a.Peer) -> Any:
        self.node.guard.unblock(args.peer)
        return {"peer": args.peer}

    async def sync(self, args: a.SyncPeers) -> Any:
        """One session with the peer, or with every connected peer at once (up to
        `SYNC_AT_ONCE` at a time). One after another, a slow or stalled peer held up the
        rest, and a relay's 22 peers could take the request past its 120 s deadline."""
        peers = [args.peer] if args.peer is not None else list(self.node.peers)
        done: dict[str, SyncStats] = {}
        limit = trio.CapacityLimiter(SYNC_AT_ONCE)

        async def one(peer: str) -> None:
            async with limit:
                done[peer] = await self.node.sync_now(peer)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(one, peer)
        return {"synced": [_synced(peer, done[peer]) for peer in peers]}

    async def panic(self, args: a.Panic) -> Any:
        """Stop writing to the disk and answer; then warn (if asked), wipe and exit within the bound."""
        return await panic_node(self.node, warn=args.warn)

    async def whoami(self, args: a.NoParams) -> Any:
        card = self.member_circles().identity.card()
        return {"name": card.name, "member_id": card.member_id.hex(), "fingerprint": card.fingerprint}

    async def circles(self, args: a.NoParams) -> Any:
        listing = []
        for circle in self.member_circles().circles.values():
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
                    "am_member": self.me() in state.members,
                }
            )
        return sorted(listing, key=lambda c: c["name"].lower())

    async def circle_create(self, args: a.CircleCreate) -> Any:
        description = args.description or ""
        # Checked before anything is made: a refused genesis would leave an empty circle behind.
        check_text(args.name, "name", schema.MAX_NAME_CHARS)
        check_text(description or "-", "description", schema.MAX_DESCRIPTION_CHARS, short=False)
        circles = self.member_circles()
        try:
            circle, envelope = circles.create_circle(args.name, description, confirm_joins=args.confirm_joins)
        except Malformed as exc:
            raise UsageError(f"cannot create the circle: {exc}") from exc
        self.lifecycle().install_keys(circle)
        await self.node.serve_topic(envelope.topic)
        self.node.publish_nowait(envelope)
        # Introduce ourselves, so the circle shows a name rather than an id; and hold the
        # fund's books until someone else does (an organizer may grant and revoke it).
        identity = circles.identity
        if identity.name != DEFAULT_NAME and identity.member_id not in circle.replica.state.profiles:
            await self.author(circle, "profile.set", {"display_name": identity.name, "pronouns": None, "skills": []})
        await self.author(circle, "role.grant", {"member": identity.member_id, "role": "treasurer"})
        return {"id": circle.id.hex(), "name": args.name, "topic": circle.handle.hex()}

    async def join(self, args: a.Join) -> Any:
        return await self.lifecycle().join(args.code)

    async def joins(self, args: a.NoParams) -> Any:
        return self.lifecycle().pending_joins()

    async def relay_allow(self, args: a.RelayAllow) -> Any:
        node = self.node
        if not node.is_relay:
            raise UsageError("only a relay node serves topics by token; this node is a member node")
        token = RelayToken.decode(args.token)
        entry = allow_relay_topic(node.keystore.data.extra, token)
        node.keystore.save()
        for topic in node.serve_relay_topic(entry):
            await node.serve_topic(topic)
        return {"topic": token.topic.hex(), "label": token.label, "epochs": len(entry.relay_keys)}

    # --- one circle: queries ------------------------------------------------------------

    async def relays(self, circle: Circle, args: a.NoParams) -> Any:
        """The relays a circle lists (relay.add), and whether this node reaches each now."""
        return self.node.relay_reach(circle)

    async def views(self, circle: Circle, args: a.Views) -> Any:
        reader = self.member_circles().reader(circle)
        built = circle.replica.views(now=int(self.node.clock()), feed_limit=args.feed_limit, reader=reader)
        result = to_json(built)
        state = circle.replica.state
        verified = self.node.keystore.data.extra.get("verified", {})
        for entry in result["members"]:
            member = bytes.fromhex(entry["id"])
            entry["verified"] = member in verified and verified[member] == state.cards.get(member)
            entry["has_current_key"] = member in state.holders.get(state.info.get("epoch", b""), {})
        result["id"] = circle.id.hex()
        result["me"] = self.me().hex()
        if self.node.lifecycle is not None:
            result |= self._organizer_views(circle, self.node.lifecycle)
        result["allocations"] = to_json(allocations_view(circle, self.member_circles().identity))
        if args.only is not None:
            result = {k: v for k, v in result.items() if k in args.only or k in ("id", "me", "name")}
        return result

    def _organizer_views(self, circle: Circle, lifecycle: Lifecycle) -> dict[str, Any]:
        """Private check-ins and (to organizers only: sealed to them) reports, for `views`."""
        state = circle.replica.state
        notes = lifecycle.private_checkins.get(circle.id, {}).values()
        rows = [(bytes.fromhex(n["id"]), bytes.fromhex(n["member"]), n["status"], n["note"], n["ts"]) for n in notes]
        book = lifecycle.reports.get(circle.id)
        reports = (
            report_views(state, book.reports.values(), self.member_circles().reader(circle))
            if book is not None and _organizer(circle, self.me())
            else ()
        )
        return {"private_checkins": to_json(private_checkins(state, rows)), "reports": to_json(reports)}

    async def modlog(self, circle: Circle, args: a.NoParams) -> Any:
        """The moderation log (sync/modlog.py), newest last; a review's reason for organizers."""
        state = circle.replica.state
        me = self.member_circles().identity
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

    async def state_hash(self, circle: Circle, args: a.NoParams) -> Any:
        return {"state_hash": circle.replica.state_hash().hex(), "ops": circle.replica.state.applied_count}

    async def circle_relay_token(self, circle: Circle, args: a.RelayTokenParams) -> Any:
        epochs = circle.keys.epochs
        token = RelayToken(
            circle.handle,
            args.label or f"circle {circle.handle.hex()[:8]}",
            {epoch: relay_key(key) for epoch, key in epochs.items()},
            grant_keys={epoch: grant_signing_keypair(key)[0] for epoch, key in epochs.items()},
            **({"quota_bytes": args.quota_bytes} if args.quota_bytes is not None else {}),
        )
        return {"token": token.encode(), "topic": circle.handle.hex()}

    async def reports(self, circle: Circle, args: a.NoParams) -> Any:
        """The reports sealed to this organizer, with who reported what and why."""
        if not _organizer(circle, self.me()):
            raise UsageError("only organizers receive reports, and you are not one in this circle")
        book = self.lifecycle().report_book(circle)
        views = report_views(circle.replica.state, book.reports.values(), self.member_circles().reader(circle))
        return {"reports": to_json(views), "dropped": dict(sorted(book.dropped.items()))}

    async def invites(self, circle: Circle, args: a.NoParams) -> Any:
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

    async def requests(self, circle: Circle, args: a.NoParams) -> Any:
        card = self.member_circles().identity.card()
        return [
            {
                "member": pending.request.card.member_id.hex(),
                "name": pending.request.card.name,
                "fingerprint": pending.request.card.fingerprint,
                "safety_number": safety_number(card, pending.request.card),
                "invite": None if pending.request.invite is None else pending.request.invite.hex(),
                "received": pending.received,
            }
            for pending in self.lifecycle().pending_requests(circle)
        ]

    async def member_card(self, circle: Circle, args: a.MemberOnly) -> Any:
        return member_card_info(self.node, circle, args.member)

    async def allocations(self, circle: Circle, args: a.NoParams) -> Any:
        return to_json(allocations_view(circle, self.member_circles().identity))

    # --- one circle: actions ------------------------------------------------------------

    def _action(self, kind: str) -> InCircle:
        async def action(circle: Circle, args: Any) -> Any:
            return await self.act(circle, kind, args)

        return action

    async def act(self, circle: Circle, kind: str, args: Any) -> Any:
        """One action of `ACTIONS`: precheck its body, then sign it (or seal it, if private)."""
        body = op_body(args)
        check_action(circle.replica.state, self.me(), kind, body, now=self.node.clock())
        if getattr(args, "private", False):
            # Only the organizers will know who asked and why (docs/PROTOCOL.md §12).
            plain = {**{k: v for k, v in body.items() if k != "content"}, **body.get("content", {})}
            private_kind = "private.request" if kind == "aid.request" else "private.checkin"
            envelope_id = self.lifecycle().private_message(circle, private_kind, plain)
            return {"id": None, "private": envelope_id.hex(), "rejected": None}
        if kind == "aid.request":
            body["private"] = None
        result = await self.author(circle, kind, body)
        if kind == OpKind.MEMBER_REMOVE and result["id"] is not None and result["rejected"] is None:
            # The circle cannot seal anything until the key changes: rotate at once.
            await self.lifecycle().rotate_first(circle)
        return result

    async def author(self, circle: Circle, kind: str, body: dict[str, Any]) -> Any:
        # Stored (in a worker thread), indexed, gossiped and folded, in the circle's author turn.
        _envelope, result = await self.member_circles().author_in_thread(circle, kind, body)
        op = result.applied[0] if result.applied else None
        reason = dict(result.rejected).get(op.id) if op is not None else None
        self.node.emit("ops", {"circle": circle.id.hex(), "ops": [{"id": op.id.hex(), "kind": kind}] if op else []})
        return {"id": op.id.hex() if op else None, "rejected": reason}

    async def post_many(self, circle: Circle, args: a.PostMany) -> Any:
        """Post several messages in one durable write (imports, scripts, benchmarks)."""
        items = [
            ("msg.post", {"content": {"text": t, "content_warning": None}, "reply_to": None, "urgent": False})
            for t in args.texts
        ]
        _envelopes, result = await self.member_circles().author_many_in_thread(circle, items)
        rejected = dict(result.rejected)
        ops = list(result.applied)
        self.node.emit(
            "ops", {"circle": circle.id.hex(), "ops": [{"id": op.id.hex(), "kind": "msg.post"} for op in ops]}
        )
        return {"ids": [op.id.hex() for op in ops], "rejected": [rejected.get(op.id) for op in ops]}

    async def propose(self, circle: Circle, args: a.Propose) -> Any:
        body = {"kind": args.kind, "title": args.title, "text": args.text or "", "details": self._details(circle, args)}
        if args.closes_s is not None:
            body["closes"] = args.closes_s
        check_action(circle.replica.state, self.me(), "proposal.create", body)
        return await self.author(circle, "proposal.create", body)

    def _details(self, circle: Circle, args: a.Propose) -> Any:
        """A proposal's details by its kind, each needing its own parameters."""
        if args.kind == "spend":
            recipient: Any = _needed(args, "recipient")
            return {
                "amount": _needed(args, "amount"),
                "currency": _needed(args, "currency"),
                "recipient": bytes.fromhex(recipient) if looks_like_id(recipient) else recipient,
                "purpose": _needed(args, "purpose"),
            }
        if args.kind in ("remove", "organizer"):
            return {"member": _needed(args, "member")}
        if args.kind == "review":
            member = _needed(args, "member")
            try:
                return review_details(circle.replica.state, member, _needed(args, "reason"))
            except Malformed as exc:
                raise bad(str(exc)) from None
        if args.kind == "charter":
            # Only what changes is asked for; the rest is the charter in force, checked here
            # so a mistake is one line and not a rejected op in everyone's list.
            return amend_charter(circle.replica.state.info["charter"], args.charter)
        if args.kind == "general":
            return {}
        raise bad("kind must be spend, charter, remove, general, review or organizer")

    async def report(self, circle: Circle, args: a.Report) -> Any:
        """Report a post or a member to the organizers, sealed to them (docs/PROTOCOL.md §12)."""
        if (args.post is None) == (args.member is None):
            raise bad("report either a post (post) or a member (member), not both or neither")
        if args.member is not None and args.member not in circle.replica.state.members:
            raise UsageError("that person is not a member of this circle")
        try:
            body = report_body(post=args.post, member=args.member, reason=args.reason)
        except schema.InvalidBody as exc:
            raise UsageError(explain(exc)) from None
        envelope_id = self.lifecycle().private_message(circle, REPORT_KIND, body)
        return {"id": None, "private": envelope_id.hex(), "rejected": None}

    # --- one circle: membership and keys ------------------------------------------------

    async def invite_create(self, circle: Circle, args: a.InviteCreate) -> Any:
        from kith.p2pnet.qr import qr_text

        async with circle.authoring:  # the lifecycle authors synchronously: in our turn
            code = self.lifecycle().create_invite(circle, uses=args.uses, expires_s=args.expires_s)
        text = code.encode()
        return {
            "code": text,
            "qr": qr_text(text),
            "invite": code.invite_id.hex(),
            "expires": code.expires,
            "uses": args.uses,
            "addresses": list(code.addresses),
        }

    async def invite_revoke(self, circle: Circle, args: a.InviteRevoke) -> Any:
        prefix = args.invite.lower()
        matches = [i for i in circle.replica.state.invites if i.hex().startswith(prefix)]
        if len(matches) != 1:
            raise UsageError("no single invite starts with that id; 'kith invites CIRCLE' lists them")
        result = await self.author(circle, "invite.revoke", {"invite": matches[0]})
        self.lifecycle().invite_closed(circle, matches[0])
        return result

    async def approve(self, circle: Circle, args: a.Approve) -> Any:
        prefix = args.member.lower()
        lifecycle = self.lifecycle()
        pending = [p for p in lifecycle.pending_requests(circle) if p.request.card.member_id.hex().startswith(prefix)]
        if len(pending) != 1:
            raise UsageError("no single pending request matches; 'kith requests CIRCLE' lists them")
        async with circle.authoring:
            signed = lifecycle.approve(circle, pending[0].request, vouch=args.vouch)
        return {"id": signed.id.hex(), "member": pending[0].request.card.member_id.hex()}

    async def member_add(self, circle: Circle, args: a.MemberAdd) -> Any:
        try:
            card = bytes.fromhex(args.card)
        except ValueError:
            raise bad("card must be the hex card that 'kith whoami' prints") from None
        async with circle.authoring:
            signed = self.lifecycle().add_by_card(circle, card, vouch=args.vouch)
        return {"id": signed.id.hex(), "rejected": None}

    async def rotate(self, circle: Circle, args: a.NoParams) -> Any:
        state = circle.replica.state
        me = self.me()
        if me not in state.members or ORGANIZER not in state.members[me].roles:
            raise UsageError("only an organizer rotates a circle's key")
        async with circle.authoring:
            return {"epoch": self.lifecycle().rotate(circle).hex()}

    async def verify(self, circle: Circle, args: a.MemberOnly) -> Any:
        info = member_card_info(self.node, circle, args.member)
        verified = self.node.keystore.data.extra.setdefault("verified", {})
        verified[args.member] = circle.replica.state.cards[args.member]
        self.node.keystore.save()
        info["verified"] = True
        return info

    # --- one circle: the fund's allocation rules ----------------------------------------

    async def ask_fund(self, circle: Circle, args: a.AskFund) -> Any:
        """Ask the fund under the charter's allocation rules (sealed to the committee)."""
        async with circle.authoring:
            return self.lifecycle().alloc.ask(circle, args.category, args.amount, args.note or "")

    async def pay_ask(self, circle: Circle, args: a.PayAsk) -> Any:
        state = circle.replica.state
        ask = state.asks.get(args.ask)
        if ask is None:
            raise UsageError("there is no such ask in this circle (see 'kith allocations')")
        member = state.members.get(self.me())
        if member is None or TREASURER not in member.roles:
            raise UsageError("only a treasurer may pay an ask")
        if ask.outcome != alloc_kind.ALLOCATED:
            raise UsageError("that ask was not allocated money (see 'kith allocations')")
        if ask.paid_by is not None:
            raise UsageError("that ask was already paid")
        if ask.amount > state.balances.get(ask.currency, 0):
            raise UsageError("the fund's confirmed balance is too small to pay it: confirm contributions first")
        if args.note is not None:
            check_text(args.note, "note", schema.MAX_NOTE_CHARS, short=False)
        return await self.author(circle, "alloc.pay", {"ask": args.ask, "note": args.note})


def _peer_row(state: Any, connections: int, outbound: int | None) -> dict[str, Any]:
    last = state.last_sync
    return {
        "peer": state.peer,
        "connected_at": state.connected_at,
        # 0 while a sync session with a peer that just went still winds down: the peer stays
        # listed until it ends.
        "connections": connections,
        "syncing": state.syncing,
        # Gossip RPCs queued for it (None: no gossip stream to it yet).
        "outbound": outbound,
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


def _needed(args: a.Propose, name: str) -> Any:
    """A parameter this kind of proposal needs (the schema has it optional: other kinds don't)."""
    value = getattr(args, name)
    if value is None:
        raise bad(f"missing parameter {name!r}")
    return value


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


def member_card_info(node: Node, circle: Circle, member: bytes) -> dict[str, Any]:
    """A member's fingerprint and the safety number two people compare to verify each other."""
    from kith.identity.keys import fingerprint, safety_number_of_keys

    state = circle.replica.state
    if member not in state.members or member not in state.cards:
        raise UsageError("that person is not a member of this circle")
    if node.circles is None:
        raise UsageError("this node is a relay: it has no circles")
    me = node.circles.identity
    verified = node.keystore.data.extra.get("verified", {})
    return {
        "member": member.hex(),
        "fingerprint": fingerprint(member, state.cards[member]),
        "safety_number": safety_number_of_keys(me.sign_public, me.dh_public, member, state.cards[member]),
        "verified": verified.get(member) == state.cards[member],
    }
