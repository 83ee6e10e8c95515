"""Governance that outlives its organizers (docs/OPS.md §6a): `kith review`, `kith elect`,
`kith modlog` and `kith member handover`.

Thin clients of the node's control API, as every circle command.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from kith.tui import render
from kith.tui.commands.schema_args import MEMBER_HELP, add_action_arguments, call, done, run_action
from kith.tui.context import Context
from kith.tui.member_text import LINE, NAME, visible
from kith.tui.textinput import add_text_source, read_text


def register(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser(
        "review",
        help="propose removing a member, with a reason only the organizers can read (it expires undecided)",
    )
    review.add_argument("circle")
    review.add_argument("member", help="their name, or their id (a prefix of 6+ hex digits)")
    add_text_source(review, "reason (sealed to the organizers)")
    review.set_defaults(handler=cmd_review)
    elect = sub.add_parser(
        "elect",
        help="propose a member as organizer; it stays open for the charter's idle period and any organizer"
        " who acts meanwhile ends it",
    )
    elect.add_argument("circle")
    elect.add_argument("member", help="their name, or their id (a prefix of 6+ hex digits)")
    elect.set_defaults(handler=cmd_elect)
    modlog = sub.add_parser("modlog", help="the moderation log: removals, demotions, handovers, reviews, elections")
    modlog.add_argument("circle")
    modlog.set_defaults(handler=cmd_modlog)
    # `kith member handover`, beside grant and revoke (circle_cmds registers `member` first).
    member_sub = next(
        action for action in sub.choices["member"]._actions if isinstance(action, argparse._SubParsersAction)
    )
    handover = member_sub.add_parser("handover", help="hand your organizer role to another member (you step down)")
    add_action_arguments(handover, "role.handover", helps={"member": MEMBER_HELP})
    handover.set_defaults(handler=functools.partial(run_action, "role.handover", "handover"))


def cmd_review(ctx: Context, args: argparse.Namespace) -> int:
    reason = read_text(args, ctx.home) or ""
    result = call(
        ctx, "propose", circle=args.circle, kind="review", title="Membership review", member=args.member, reason=reason
    )
    return done(ctx, result, "review")


def cmd_elect(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "propose", circle=args.circle, kind="organizer", title="Organizer election", member=args.member)
    return done(ctx, result, "election")


def cmd_modlog(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "modlog", circle=args.circle)
    ctx.emit(result, "\n".join(modlog_lines(result)))
    return 0


def modlog_lines(log: dict[str, Any]) -> list[str]:
    """The moderation log as `kith modlog` and the client show it, oldest first."""
    lines = []
    for entry in log["entries"]:
        target = visible(entry["target_name"], NAME)
        actor = visible(entry["actor_name"], NAME)
        what = visible(entry["kind"])
        outcome = f" ({visible(entry['outcome'])})" if entry["outcome"] else ""
        by = f"by {actor}"
        if entry["proposal"]:
            by = f"by proposal {render.short(entry['proposal'])}, decided by {actor}"
        lines.append(f"{render.when(entry['ts'])}  {what}{outcome}: {target} {by}  [{render.short(entry['op'])}]")
        if entry.get("note"):
            lines.append(f"    stated reason: {visible(entry['note'], LINE)}")
        if entry.get("reason"):
            lines.append(f"    reason (for organizers): {visible(entry['reason'], LINE)}")
    if log.get("advice"):
        lines.append(visible(log["advice"], LINE))
    return lines or ["(nothing in the moderation log)"]
