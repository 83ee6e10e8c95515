"""Moderation and monthly money: report, reports, hide, moderation, stop-monthly.

Reports go to the organizers only, sealed to them (docs/PROTOCOL.md §12): the circle never
learns who reported whom. Hiding a post is public: every member's moderation log shows it.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from kith.sync.forecast import month_of
from kith.tui import render
from kith.tui.commands import subcommand
from kith.tui.commands.circle_cmds import _view_command
from kith.tui.commands.schema_args import call, done, schema_argument
from kith.tui.context import Context
from kith.tui.labels import add_label
from kith.tui.member_text import NAME, TEXT, visible

MONTH_HELP = "a month written like 2026-12"


def this_month() -> str:
    import time

    return month_of(time.time())


def register(sub: argparse._SubParsersAction) -> None:
    command = functools.partial(subcommand, sub)

    report = command("report", "report a post or a member to the organizers (only they learn it was you)", cmd_report)
    report.add_argument("circle")
    target = report.add_mutually_exclusive_group(required=True)
    target.add_argument("--post", metavar="ID", help="the post (an id or its first digits, as the feed shows)")
    target.add_argument("--member", metavar="ID", help="the member (an id or a display name)")
    add_label(report, "reason", "reason", needed=True, help="what is wrong (the organizers read it)")
    # Required, so that `kith report CIRCLE --post ID REASON` parses: argparse gives an
    # optional positional nothing when it meets an option first, and REASON would be left over.
    next(action for action in report._actions if action.dest == "reason").nargs = None

    reports = command("reports", "organizers: the reports sealed to you, with who reported what and why", cmd_reports)
    reports.add_argument("circle")

    hide = command("hide", "organizers: hide a post for everyone (the moderation log shows it and why)", cmd_hide)
    hide.add_argument("circle")
    schema_argument(hide, "hide", "target", metavar="id")
    add_label(hide, "reason", "reason", needed=True, help="why: every member and the author read it")

    log = command("moderation", "the moderation log: posts organizers hid, and why", _view_command(
        moderation_lines, "moderation"))  # fmt: skip
    log.add_argument("circle")

    stop = command("stop-monthly", "stop your monthly contribution after a month", cmd_stop_monthly)
    stop.add_argument("circle")
    schema_argument(stop, "contribution.stop", "contribution")
    stop.add_argument("--last", metavar="YYYY-MM", help=f"the last month you pay ({MONTH_HELP}; default: this month)")


def cmd_report(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "report", circle=args.circle, post=args.post, member=args.member, reason=args.reason)
    ctx.emit(result, "Sent to the organizers only, sealed to them: nobody else learns that you reported it.")
    return 0


def cmd_reports(ctx: Context, args: argparse.Namespace) -> int:
    result = call(ctx, "reports", circle=args.circle)
    ctx.emit(result["reports"], "\n".join(report_lines(result)))
    return 0


def cmd_hide(ctx: Context, args: argparse.Namespace) -> int:
    return done(ctx, call(ctx, "hide", circle=args.circle, target=args.target, reason=args.reason), "hide")


def cmd_stop_monthly(ctx: Context, args: argparse.Namespace) -> int:
    last = args.last or this_month()
    return done(ctx, call(ctx, "contribution.stop", circle=args.circle, contribution=args.contribution,
                            last=last), "stop")  # fmt: skip


def report_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for r in result["reports"]:
        who = visible(r["reporter_name"], NAME)
        if r["target"] == "member":
            what = f"member {visible(r['target_name'] or '', NAME)} [{render.short(r['target_id'])}]"
        else:
            author = visible(r["target_name"], NAME) if r["target_name"] else "an author this node has not seen"
            what = f"post [{render.short(r['target_id'])}] by {author}"
        lines.append(f"{render.when(r['ts'])} {who} reported {what}: {visible(r['reason'], TEXT)}")
        if r["target"] == "post":
            if r["hidden"] is not None:
                lines.append(f"    (hidden: {visible(r['hidden'], TEXT)})")
            elif r["readable"]:
                lines.append(f"    » {visible(r['post_text'], 200)}")
            else:
                lines.append("    (this node cannot read that post: not received, or sealed before you joined)")
    if not lines:
        lines.append("(no reports)")
    dropped = result.get("dropped") or {}
    if dropped:
        lines.append("Dropped: " + ", ".join(f"{count} {reason}" for reason, count in dropped.items()))
    return lines


def moderation_lines(views: dict[str, Any]) -> list[str]:
    lines = []
    for e in views.get("moderation", []):
        who = visible(e["actor_name"], NAME)
        author = visible(e["target_name"] or "", NAME)
        reason = visible(e["reason"] or "", TEXT)
        lines.append(f"[{render.short(e['op'])}] {render.when(e['ts'])} {who} hid [{render.short(e['target'])}]"
                     f" by {author}: {reason}")  # fmt: skip
    return lines or ["(nothing hidden)"]
