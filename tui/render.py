"""Plain-text renderings of circle views for the command line (legible without colour).

Every field a member chose goes through `shown` (tui/member_text.py): its control and
invisible characters are escaped, its line breaks cannot start a line that looks like
another entry, and absurdly long text is cut; `--json` keeps the data as stored.
"""

from __future__ import annotations

import time
from typing import Any

from tui.member_text import LINE, NAME, TEXT, visible
from tui.money import format_amount


def shown(value: object, limit: int = LINE) -> str:
    """One member-chosen field, safe to print on one line."""
    return visible(value, limit)


def short(hex_id: str | None) -> str:
    return (hex_id or "")[:8]


def when(ts: int | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def feed_lines(views: dict[str, Any]) -> list[str]:
    lines: list[str] = []

    def item(entry: dict[str, Any], depth: int) -> None:
        pad = "    " * depth
        head = f"{pad}[{short(entry['id'])}] {shown(entry['author_name'], NAME)} · {when(entry['ts'])}"
        if entry["kind"] == "checkin":
            head += f" · check-in: {shown(entry['status'])}"
        if entry["urgent"]:
            head += " · URGENT"
        if entry["edited"]:
            head += " · edited"
        lines.append(head)
        if entry["deleted"]:
            lines.append(f"{pad}    (deleted)")
        elif entry["content_warning"]:
            lines.append(f"{pad}    CW: {shown(entry['content_warning'])} (text folded; use --show to read)")
        elif entry["text"]:
            text = visible(entry["text"], TEXT, multiline=True)
            lines.extend(f"{pad}    {line}" for line in text.splitlines() or [""])
        if entry["reactions"]:
            lines.append(f"{pad}    " + shown("  ".join(f"{emoji} {count}" for emoji, count in entry["reactions"])))
        for reply in entry["replies"]:
            item(reply, depth + 1)

    for entry in views["feed"]:
        item(entry, 0)
    if not lines:
        lines.append("(no messages yet)")
    attention = views.get("needs_attention") or []
    if attention:
        lines.insert(0, "Needs attention:")
        for index, entry in enumerate(attention, start=1):
            label = "urgent" if entry["kind"] == "urgent" else f"check-in: {shown(entry['status'])}"
            who = shown(entry["author_name"], NAME)
            lines.insert(index, f"  [{short(entry['id'])}] {who} ({label}) {shown(entry['text'], 60)}")
        lines.insert(len(attention) + 1, "")
    return lines


def _aid(entry: dict[str, Any]) -> str:
    amount = f" {entry['amount']} {shown(entry['unit'], NAME)}" if entry["amount"] is not None else ""
    expired = " (expired)" if entry["expired"] else ""
    return (
        f"  [{short(entry['id'])}] {shown(entry['category'])}{amount}: {shown(entry['description'], 70)}"
        f" · {shown(entry['author_name'], NAME)} · {shown(entry['status'])}{expired}"
    )


def board_lines(views: dict[str, Any]) -> list[str]:
    aid = views["aid"]
    lines = ["Requests (people who need help):"]
    lines += [_aid(e) for e in aid["open_requests"]] or ["  (none)"]
    lines += ["", "Pledges (offers of help):"]
    lines += [_aid(e) for e in aid["open_pledges"]] or ["  (none)"]
    if aid["matches"]:
        lines += ["", "Matches (pledge -> request):"]
        lines += [f"  {short(p)} -> {short(r)}" for p, r in aid["matches"]]
    if aid["fulfilled"]:
        lines += ["", "Fulfilled:"] + [_aid(e) for e in aid["fulfilled"]]
    return lines


def ledger_lines(views: dict[str, Any]) -> list[str]:
    fund = views["fund"]
    lines = ["Balance: " + (", ".join(format_amount(a, c) for c, a in fund["balances"]) or "nothing confirmed yet")]
    if fund["pending"]:
        lines.append("Awaiting a treasurer's receipt:")
        lines += [
            f"  [{short(e['op'])}] {format_amount(e['amount'], e['currency'])} from {shown(e['signer_name'], NAME)}"
            for e in fund["pending"]
        ]
    lines.append("Ledger (every entry with who signed it):")
    for e in fund["entries"]:
        ref = f" for {short(e['ref'])}" if e["ref"] else ""
        note = f" · {shown(e['note'])}" if e["note"] else ""
        lines.append(
            f"  [{short(e['op'])}] {when(e['ts'])} {shown(e['entry']):<12}"
            f" {format_amount(e['amount'], e['currency']):>14} signed by {shown(e['signer_name'], NAME)}{ref}{note}"
        )
    return lines


def proposal_lines(views: dict[str, Any]) -> list[str]:
    lines = []
    for p in views["proposals"]:
        rule = f"quorum {p['quorum_pct']}%, threshold {p['threshold_pct']}%" + (", consent" if p["consent"] else "")
        head = f"[{short(p['id'])}] {shown(p['title'])} ({shown(p['kind'])}) · {shown(p['status']).upper()}"
        lines.append(f"{head} · by {shown(p['author_name'], NAME)}")
        details = p["details"]
        if p["kind"] == "spend" and isinstance(details, dict):
            recipient = details["recipient"]
            to = short(recipient) if len(recipient) == 64 else shown(recipient, NAME)
            money = format_amount(details["amount"], details["currency"])
            lines.append(f"    spend {money} to {to}: {shown(details['purpose'])}")
        lines.append(
            f"    approve {p['approve']} · object {p['object']} · abstain {p['abstain']} of {p['eligible']} ({rule})"
        )
    return lines or ["(no proposals)"]


def member_lines(views: dict[str, Any]) -> list[str]:
    lines = []
    for m in views["members"]:
        roles = shown(",".join(m["roles"])) or "member"
        mark = "you" if m["id"] == views.get("me") else "verified" if m.get("verified") else "unverified"
        pronouns = f" ({shown(m['pronouns'], NAME)})" if m["pronouns"] else ""
        fork = " · FORKED their history (a modified client: ask them why)" if m.get("forked") else ""
        lines.append(f"[{short(m['id'])}] {shown(m['name'], NAME)}{pronouns} · {roles} · {mark}{fork}")
    return lines


def event_lines(views: dict[str, Any]) -> list[str]:
    lines = []
    for e in views["events"]:
        place = f" · {shown(e['place_hint'])}" if e["place_hint"] else ""
        answers = f"yes {e['yes']} maybe {e['maybe']} no {e['no']}"
        lines.append(f"[{short(e['id'])}] {when(e['starts'])} {shown(e['title'])}{place} · {answers}")
    return lines or ["(no events)"]


def rejected_lines(views: dict[str, Any]) -> list[str]:
    return [
        f"[{short(r['op'])}] {shown(r['kind'])} by {shown(r['author_name'], NAME)}: {shown(r['reason'])}"
        for r in views["rejected"]
    ] or ["(nothing rejected)"]
