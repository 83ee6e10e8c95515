"""Circle subcommands: create, list, read the views, and every member action.

Each is a thin client of the running node's control API: it sends one request and prints
the result (or the node's one-line error).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kith.identity.errors import UsageError
from kith.sync.kinds.records import MAX_CLOSES_S, MIN_CLOSES_S
from kith.tui import render
from kith.tui.commands import subcommand
from kith.tui.commands.schema_args import (
    MEMBER_HELP,
    action_command,
    add_action_arguments,
    call,
    done,
    run_action,
    schema_argument,
)
from kith.tui.context import Context
from kith.tui.labels import add_label
from kith.tui.member_text import NAME, visible
from kith.tui.money import parse_amount
from kith.tui.textinput import add_text_source, read_text


def _timestamp(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise UsageError(f"{text!r} is not a date and time like 2026-12-01 18:30") from None


FEED_PARTS = ("feed", "needs_attention", "private_checkins")
"""What `kith feed` shows: the threads, what needs attention, and (organizers) private check-ins."""


def _add_monthly(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--monthly", nargs="?", const="this", metavar="FIRST-MONTH",
        help=f"{help_text}; from FIRST-MONTH (like 2026-12), else from this month",
    )  # fmt: skip


def _first_month(value: str | None) -> str | None:
    """``--monthly`` as the op's first month: this UTC month when no month is given."""
    if value != "this":
        return value
    from kith.sync.forecast import month_of

    return month_of(time.time())


def _expires(days: float | None) -> int | None:
    return None if days is None else int(time.time() + days * 86400)


def register(sub: argparse._SubParsersAction) -> None:
    _register_circles(sub)
    _register_views(sub)
    _register_messages(sub)
    _register_aid(sub)
    _register_proposals(sub)
    _register_fund(sub)
    _register_events(sub)
    _register_members(sub)


def _register_circles(sub: argparse._SubParsersAction) -> None:
    """The circles list, creating a circle and its relay token."""
    command = functools.partial(subcommand, sub)
    command("circles", "list your circles", cmd_circles)
    circle = sub.add_parser("circle", help="create a circle or get a relay token for one")
    circle_sub = circle.add_subparsers(dest="circle_command", metavar="ACTION", required=True)
    create = circle_sub.add_parser("create", help="create a new circle (you become its organizer)")
    add_label(create, "name", "circle name", needed=True)
    add_label(create, "--description", "circle description")
    create.add_argument(
        "--confirm-joins",
        action="store_true",
        help="an organizer must confirm every join, even with a valid invite (a leaked code is not enough)",
    )
    create.set_defaults(handler=cmd_circle_create)
    token = circle_sub.add_parser("relay-token", help="a token that lets a relay serve this circle")
    token.add_argument("circle")
    add_label(token, "--label", "relay token label", help="what the relay operator sees (not the circle's name)")
    token.add_argument("--quota-mb", type=int, help="storage the relay should allow (default 1024)")
    token.set_defaults(handler=cmd_relay_token)


def _register_views(sub: argparse._SubParsersAction) -> None:
    """The reading commands: one per view of a circle."""
    command = functools.partial(subcommand, sub)
    views: list[tuple[str, str, Callable[[dict[str, Any]], list[str]], str | tuple[str, ...]]] = [
        ("feed", "read the circle's messages and check-ins", render.feed_lines, FEED_PARTS),
        ("board", "the mutual-aid board: requests, pledges, matches", render.board_lines, "aid"),
        ("ledger", "the community fund: balance and every entry", render.ledger_lines, "fund"),
        ("proposals", "proposals with their tallies and status", render.proposal_lines, "proposals"),
        ("members", "members with roles and whether you verified them", render.member_lines, "members"),
        ("events", "events with RSVPs", render.event_lines, "events"),
        ("rejected", "ops the circle refused, with the reasons", render.rejected_lines, "rejected"),
    ]
    for name, help_text, lines, parts in views:
        # What a view's lines read besides its own part: a charter proposal shows what it
        # would change in the charter in force.
        also = ("charter",) if name == "proposals" else ()
        parser = command(name, help_text, _view_command(lines, parts, also))
        parser.add_argument("circle")
        if name == "feed":
            parser.add_argument("--limit", type=int, default=50)
            parser.add_argument("--show", action="store_true", help="show text behind content warnings")


def _register_messages(sub: argparse._SubParsersAction) -> None:
    """Posts, edits, deletions, reactions, check-ins and profiles."""
    command = functools.partial(subcommand, sub)
    post = command("post", "post a message (its text from stdin, --file or $EDITOR)", cmd_post)
    post.add_argument("circle")
    add_text_source(post, "message")
    post.add_argument("--reply-to", metavar="ID")
    add_label(post, "--cw", "content warning", metavar="WARNING", help="readers see this and unfold the text")
    post.add_argument("--urgent", action="store_true", help="flag it: I need support now")

    edit = command("edit", "edit your message (the new text from stdin, --file or $EDITOR)", cmd_edit)
    edit.add_argument("circle")
    edit.add_argument("id")
    add_text_source(edit, "message")
    add_label(edit, "--cw", "content warning", metavar="WARNING")

    action_command(
        sub, "delete", "delete your message (a tombstone stays)", "delete", "delete", metavars={"target": "id"}
    )

    react = command("react", "react to a message", cmd_react)
    react.add_argument("circle")
    schema_argument(react, "react", "target", metavar="id")
    schema_argument(react, "react", "emoji")
    react.add_argument("--off", action="store_true", help="take the reaction back")

    checkin = command("checkin", "say how you are: ok, struggling or need-help", cmd_checkin)
    checkin.add_argument("circle")
    schema_argument(checkin, "checkin", "status")
    add_text_source(checkin, "note", flag="--note")
    schema_argument(checkin, "checkin", "private", "--private")

    profile = command("profile", "set how you appear in a circle", cmd_profile)
    profile.add_argument("circle")
    add_label(profile, "--name", "display name", needed=True)
    add_label(profile, "--pronouns", "pronouns")
    add_label(profile, "--skill", "skill", append=True, help="a skill you can share (repeatable)")


def _register_aid(sub: argparse._SubParsersAction) -> None:
    """The mutual-aid board: pledges, requests, matches."""
    command = functools.partial(subcommand, sub)
    for name, help_text in [("pledge", "offer help"), ("request", "ask for help")]:
        parser = command(name, help_text, cmd_aid_item)
        parser.add_argument("circle")
        schema_argument(parser, name, "category")
        add_text_source(parser, "description")
        schema_argument(parser, name, "amount", "--amount")
        schema_argument(parser, name, "unit", "--unit")
        parser.add_argument("--expires-days", type=float)
        if name == "pledge":
            _add_monthly(parser, "pledge this every month until you withdraw it")
        if name == "request":
            schema_argument(parser, name, "private", "--private")

    action_command(sub, "match", "commit your pledge to a request", "match", "match")
    action_command(sub, "fulfil", "confirm your request was fulfilled", "fulfil", "fulfilment")
    action_command(sub, "withdraw", "withdraw your pledge or request", "withdraw", "withdrawal")


def _register_proposals(sub: argparse._SubParsersAction) -> None:
    """Proposals and votes."""
    command = functools.partial(subcommand, sub)
    propose = command("propose", "propose a decision: spend, charter, remove or general", cmd_propose)
    propose.add_argument("circle")
    propose.add_argument("kind", choices=["spend", "charter", "remove", "general"])
    add_label(propose, "title", "proposal title", needed=True)
    add_text_source(propose, "proposal text", flag="--text")
    propose.add_argument("--amount", help="for spend: e.g. 120.00")
    propose.add_argument("--currency", help="for spend: e.g. EUR")
    add_label(propose, "--recipient", "recipient", needed=_spend_with_amount, help="for spend: a member id or a name")
    add_label(propose, "--purpose", "purpose", needed=_spend_with_amount, help="for spend: what the money is for")
    propose.add_argument("--member", help="for remove: the member id")
    propose.add_argument(
        "--closes",
        metavar="DURATION",
        help="how long voting stays open: 48h, 3d, 90m (1 minute to 30 days; default: the charter's, 72h)",
    )
    for flag, what in [
        ("--history", "newcomers read what was said before they joined"),
        ("--members-can-invite", "members (not only organizers) may invite"),
        ("--confirm-joins", "an organizer confirms every join, even with a valid invite"),
    ]:
        propose.add_argument(flag, choices=["on", "off"], help=f"for charter: {what}")
    propose.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="KIND=QUORUM/THRESHOLD[/consent|/no-consent]",
        help="for charter: how a kind of proposal is decided, e.g. spend=50/60, and how long it stays open,"
        " e.g. spend=50/60@48h (repeatable)",
    )
    propose.add_argument("--guidelines-file", metavar="PATH", help="for charter: the new guidelines text, from PATH")
    propose.add_argument(
        "--alloc-file",
        metavar="PATH",
        help="for charter: the fund's allocation rules, a JSON object (README, 'Writing your circle's rules');"
        " null removes them",
    )

    vote = command("vote", "vote on a proposal", cmd_vote)
    vote.add_argument("circle")
    schema_argument(vote, "vote", "proposal")
    schema_argument(vote, "vote", "choice")
    add_text_source(vote, "reason", flag="--reason")


def _register_fund(sub: argparse._SubParsersAction) -> None:
    """The community fund: contributions, receipts, disbursements."""
    command = functools.partial(subcommand, sub)
    contribute = command("contribute", "state that you sent money to the fund", cmd_contribute)
    contribute.add_argument("circle")
    contribute.add_argument("amount", help="e.g. 20.00")
    contribute.add_argument("currency", help="e.g. EUR")
    add_text_source(contribute, "note", flag="--note")
    _add_monthly(contribute, "contribute this every month until you stop it ('kith stop-monthly')")
    action_command(
        sub, "receipt", "treasurers: confirm a contribution arrived", "receipt", "receipt",
        metavars={"month": "YYYY-MM"}, helps={"month": "for a monthly contribution: the month that arrived"},
    )  # fmt: skip
    disburse = command("disburse", "treasurers: pay out an approved spend proposal", cmd_disburse)
    disburse.add_argument("circle")
    disburse.add_argument("proposal")
    add_text_source(disburse, "note", flag="--note")


def _register_events(sub: argparse._SubParsersAction) -> None:
    """Events and RSVPs."""
    command = functools.partial(subcommand, sub)
    event = command("event", "create an event", cmd_event)
    event.add_argument("circle")
    add_label(event, "title", "event title", needed=True)
    event.add_argument("--starts", required=True, help="date and time, e.g. 2026-12-01T18:30")
    add_label(event, "--place", "place hint", help="a hint, not an address, if that is safer")
    add_text_source(event, "event text", flag="--text")
    action_command(sub, "rsvp", "answer an event", "rsvp", "rsvp")


def _register_members(sub: argparse._SubParsersAction) -> None:
    """Organizers' member commands."""
    member = sub.add_parser("member", help="organizers: add or remove members, grant or revoke roles")
    member_sub = member.add_subparsers(dest="member_command", metavar="ACTION", required=True)
    add = member_sub.add_parser("add", help="add someone directly by their card (invites are easier)")
    add.add_argument("circle")
    add.add_argument("member", metavar="CARD", help="their card, the hex that 'kith whoami' prints")
    add_text_source(add, "vouch note", flag="--note")
    add.set_defaults(handler=cmd_member, action="add")
    remove = member_sub.add_parser("remove", help="remove a member (or yourself: leave); the key is rotated")
    remove.add_argument("circle")
    remove.add_argument("member", help=MEMBER_HELP)
    add_text_source(remove, "reason", flag="--note")
    remove.set_defaults(handler=cmd_member, action="remove")
    for action, help_text in [
        ("grant", "give a member a role: organizer or treasurer"),
        ("revoke", "take a role back (or give up your own)"),
    ]:
        parser = member_sub.add_parser(action, help=help_text)
        add_action_arguments(parser, f"role.{action}", helps={"member": MEMBER_HELP})
        parser.set_defaults(handler=functools.partial(run_action, f"role.{action}", f"role {action}"), action=action)


def _spend_with_amount(args: argparse.Namespace) -> bool:
    """A spend's recipient and purpose are asked for once its amount and currency are given
    (without them the command stops anyway, and asking first would waste the answers)."""
    return bool(args.kind == "spend" and args.amount and args.currency)


def cmd_circles(ctx: Context, args: argparse.Namespace) -> int:
    circles = call(ctx, "circles")
    lines = []
    for c in circles:
        urgent = f", {c['urgent']} urgent" if c["urgent"] else ""
        lines.append(f"{c['id'][:8]}  {visible(c['name'], NAME)}  ({c['members']} members{urgent})")
    ctx.emit(circles, "\n".join(lines) or "You are not in any circle yet: 'kith circle create NAME' starts one.")
    return 0


def cmd_circle_create(ctx: Context, args: argparse.Namespace) -> int:
    result = call(
        ctx, "circle.create", name=args.name, description=args.description or "", confirm_joins=args.confirm_joins
    )
    ctx.emit(result, f"Created circle {visible(args.name, NAME)} ({result['id'][:8]}). You are its organizer.")
    return 0


def cmd_relay_token(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"circle": args.circle}
    if args.label:
        params["label"] = args.label
    if args.quota_mb:
        params["quota_bytes"] = args.quota_mb * 1024 * 1024
    result = call(ctx, "circle.relay_token", **params)
    ctx.emit(result, result["token"])
    return 0


def _view_command(
    lines: Callable[[dict[str, Any]], list[str]], parts: str | tuple[str, ...], also: tuple[str, ...] = ()
) -> Callable[[Context, argparse.Namespace], int]:
    """A command that prints one view. --json prints only its own part of the circle's views
    (docs/API.md, "The command line's --json"): one part as it is (a list or an object),
    several as an object of those parts; ``also`` are parts its lines read too."""
    wanted = ([parts] if isinstance(parts, str) else list(parts)) + list(also)

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        views = call(ctx, "views", circle=args.circle, feed_limit=getattr(args, "limit", 50), only=wanted)
        if getattr(args, "show", False):
            _unfold(views["feed"])
        data = views[parts] if isinstance(parts, str) else {part: views.get(part, []) for part in parts}
        ctx.emit(data, "\n".join(lines(views)))
        return 0

    return handler


def _unfold(items: list[dict[str, Any]]) -> None:
    for item in items:
        item["content_warning"] = None
        _unfold(item["replies"])


def cmd_post(ctx: Context, args: argparse.Namespace) -> int:
    result = call(
        ctx,
        "post",
        circle=args.circle,
        text=read_text(args, ctx.home),
        reply_to=args.reply_to,
        content_warning=args.cw,
        urgent=args.urgent,
    )
    return done(ctx, result, "message")


def cmd_edit(ctx: Context, args: argparse.Namespace) -> int:
    return done(
        ctx,
        call(ctx, "edit", circle=args.circle, target=args.id, text=read_text(args, ctx.home), content_warning=args.cw),
        "edit",
    )


def cmd_react(ctx: Context, args: argparse.Namespace) -> int:
    return done(
        ctx, call(ctx, "react", circle=args.circle, target=args.target, emoji=args.emoji, on=not args.off), "reaction"
    )


def cmd_checkin(ctx: Context, args: argparse.Namespace) -> int:
    note = read_text(args, ctx.home)
    result = call(ctx, "checkin", circle=args.circle, status=args.status, note=note, private=args.private)
    if result.get("private"):
        ctx.emit(result, "Sent to the organizers only.")
        return 0
    return done(ctx, result, "check-in")


def cmd_profile(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "profile", circle=args.circle, display_name=args.name, pronouns=args.pronouns, skills=args.skill)
    return done(ctx, result, "profile")


def cmd_aid_item(ctx: Context, args: argparse.Namespace) -> int:
    result = call(
        ctx,
        args.command,
        circle=args.circle,
        category=args.category,
        description=read_text(args, ctx.home),
        amount=args.amount,
        unit=args.unit,
        expires=_expires(args.expires_days),
        **({"private": True} if getattr(args, "private", False) else {}),
        **({"monthly": _first_month(args.monthly)} if getattr(args, "monthly", None) else {}),
    )
    if result.get("private"):
        ctx.emit(result, "Sent to the organizers only; one of them posts it for you, without your name or reason.")
        return 0
    return done(ctx, result, args.command)


def cmd_propose(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"circle": args.circle, "kind": args.kind, "title": args.title}
    params["text"] = read_text(args, ctx.home) or ""
    if args.kind == "spend":
        if not (args.amount and args.currency and args.recipient and args.purpose):
            raise UsageError("a spend proposal needs --amount, --currency, --recipient and --purpose")
        currency = args.currency.upper()
        params.update(
            amount=parse_amount(args.amount, currency),
            currency=currency,
            recipient=args.recipient,
            purpose=args.purpose,
        )
    elif args.kind == "remove":
        if not args.member:
            raise UsageError("a remove proposal needs --member")
        params["member"] = args.member
    elif args.kind == "charter":
        params["charter"] = _charter_changes(args)
    if args.closes is not None:
        params["closes_s"] = parse_closes(args.closes)
    return done(ctx, call(ctx, "propose", **params), "proposal")


_CLOSES_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_closes(text: str) -> int:
    """``--closes``: '48h', '3d', '90m' or seconds, from 1 minute to 30 days (as the fold allows)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise UsageError(f"--closes {text.strip()!r} is not a duration like 48h, 3d or 90m")
    seconds = int(match.group(1)) * _CLOSES_UNIT_S[match.group(2) or "s"]
    if not MIN_CLOSES_S <= seconds <= MAX_CLOSES_S:
        raise UsageError(f"--closes {text.strip()}: voting stays open from 1 minute to 30 days")
    return seconds


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not JSON text"
        raise UsageError(f"cannot read the {what} from {path}: {reason}") from None


def _charter_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The charter settings a `propose ... charter` names (the node checks the values)."""
    changes: dict[str, Any] = {}
    for name in ("history", "members_can_invite", "confirm_joins"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name) == "on"
    rules: dict[str, dict[str, Any]] = {}
    for text in args.rule:
        kind, _, numbers = text.partition("=")
        numbers, at, window = numbers.partition("@")
        parts = numbers.split("/")
        if (
            not 2 <= len(parts) <= 3
            or not all(p.isdigit() for p in parts[:2])
            or parts[2:] not in ([], ["consent"], ["no-consent"])
        ):
            raise UsageError(
                f"--rule {text!r}: write KIND=QUORUM/THRESHOLD[/consent|/no-consent][@WINDOW], e.g. spend=50/60@48h"
            )
        rules[kind] = {"quorum_pct": int(parts[0]), "threshold_pct": int(parts[1])}
        if parts[2:]:
            rules[kind]["consent"] = parts[2] == "consent"
        if at:
            rules[kind]["closes_s"] = parse_closes(window)
    if rules:
        changes["rules"] = rules
    if args.guidelines_file:
        try:
            with open(args.guidelines_file, encoding="utf-8") as handle:
                changes["text"] = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
            raise UsageError(f"cannot read the guidelines from {args.guidelines_file}: {reason}") from None
    if args.alloc_file:
        changes["alloc"] = _read_json(args.alloc_file, "allocation rules")
    if not changes:
        raise UsageError(
            "a charter proposal needs a change: --history, --members-can-invite, --confirm-joins, --rule, "
            "--guidelines-file or --alloc-file"
        )
    return changes


def cmd_vote(ctx: Context, args: argparse.Namespace) -> int:
    reason = read_text(args, ctx.home)
    result = call(ctx, "vote", circle=args.circle, proposal=args.proposal, choice=args.choice, reason=reason)
    return done(ctx, result, "vote")


def cmd_contribute(ctx: Context, args: argparse.Namespace) -> int:
    currency = args.currency.upper()
    result = call(
        ctx,
        "contribute",
        circle=args.circle,
        amount=parse_amount(args.amount, currency),
        currency=currency,
        note=read_text(args, ctx.home),
        monthly=_first_month(args.monthly),
    )
    return done(ctx, result, "contribution")


def cmd_disburse(ctx: Context, args: argparse.Namespace) -> int:
    return done(
        ctx,
        call(ctx, "disburse", circle=args.circle, proposal=args.proposal, note=read_text(args, ctx.home)),
        "disbursement",
    )


def cmd_event(ctx: Context, args: argparse.Namespace) -> int:
    result = call(
        ctx,
        "event.create",
        circle=args.circle,
        title=args.title,
        starts=_timestamp(args.starts),
        place_hint=args.place,
        text=read_text(args, ctx.home),
    )
    return done(ctx, result, "event")


def cmd_member(ctx: Context, args: argparse.Namespace) -> int:
    if args.action == "add":
        result = call(ctx, "member.add", circle=args.circle, card=args.member, vouch=read_text(args, ctx.home))
        if result.get("rejected"):
            return done(ctx, result, "member add")
        ctx.emit(
            result,
            f"member add {render.short(result.get('id'))} sent. Nothing reaches their node yet: give them an"
            " invite code of yours ('kith invite CIRCLE'); using it brings them the keys (it is not used up)",
        )
        return 0
    else:
        result = call(ctx, "member.remove", circle=args.circle, member=args.member, reason=read_text(args, ctx.home))
    return done(ctx, result, f"member {args.action}")
