"""Plain-text renderings of circle views for the command line (legible without colour).

Every field a member chose goes through `shown` (tui/member_text.py): its control and
invisible characters are escaped, its line breaks cannot start a line that looks like
another entry, and absurdly long text is cut; `--json` keeps the data as stored.
"""

from __future__ import annotations

import time
from typing import Any

from kith.tui.member_text import LINE, NAME, TEXT, visible
from kith.tui.money import format_amount


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
        if entry.get("hidden"):
            whose = "your post was hidden" if entry["author"] == views.get("me") else "hidden"
            by = shown(entry.get("hidden_by") or "an organizer", NAME)
            lines.append(f"{pad}    ({whose} by {by}: {shown(entry['hidden'])})")
        elif entry["deleted"]:
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
    top: list[str] = []
    attention = views.get("needs_attention") or []
    private = views.get("private_checkins") or []
    if attention or any(entry["needs_attention"] for entry in private):
        top.append("Needs attention:")
        for entry in attention:
            label = "urgent" if entry["kind"] == "urgent" else f"check-in: {shown(entry['status'])}"
            who = shown(entry["author_name"], NAME)
            top.append(f"  [{short(entry['id'])}] {who} ({label}) {shown(entry['text'], 60)}")
        for entry in private:
            if entry["needs_attention"]:
                who = shown(entry["member_name"], NAME)
                label = f"private check-in: {shown(entry['status'])}"
                top.append(f"  [{short(entry['id'])}] {who} ({label}) {shown(entry['note'], 60)}")
        top.append("")
    if private:
        # Only organizers' nodes can open these: the circle never sees them.
        top.append("Private check-ins (only organizers see these; reach out privately):")
        for entry in private:
            old = "" if entry["latest"] else " (earlier)"
            head = f"  [{short(entry['id'])}] {shown(entry['member_name'], NAME)} · {when(entry['ts'])}"
            note = f": {shown(entry['note'], 60)}" if entry["note"] else ""
            top.append(f"{head} · {shown(entry['status'])}{old}{note}")
        top.append("")
    return top + lines


PRIVATE_HIDDEN = "only organizers can read who asked and why"
"""What a private request shows to a member who is neither an organizer nor the requester."""


def aid_who(entry: dict[str, Any], me: str | None = None) -> str:
    """Who an aid item is from, in words. A private request is posted by an organizer on
    someone's behalf: it names the requester to those who may know, and nobody otherwise
    (never the organizer who posted it)."""
    if not entry.get("private"):
        return shown(entry["author_name"], NAME)
    if entry.get("requester_name") is None:
        return "PRIVATE (requester hidden)"
    you = " (you)" if me and entry.get("requester") == me else ""
    return f"PRIVATE, asked by {shown(entry['requester_name'], NAME)}{you}"


def _aid(entry: dict[str, Any], me: str | None = None) -> str:
    amount = f" {entry['amount']} {shown(entry['unit'], NAME)}" if entry["amount"] is not None else ""
    expired = " (expired)" if entry["expired"] else ""
    description = entry["description"]
    if entry.get("private") and entry.get("requester") is None:
        description = f"({PRIVATE_HIDDEN})"
    return (
        f"  [{short(entry['id'])}] {shown(entry['category'])}{amount}: {shown(description, 70)}"
        f" · {aid_who(entry, me)} · {shown(entry['status'])}{expired}"
    )


def board_lines(views: dict[str, Any]) -> list[str]:
    aid, me = views["aid"], views.get("me")
    lines = ["Requests (people who need help):"]
    lines += [_aid(e, me) for e in aid["open_requests"]] or ["  (none)"]
    lines += ["", "Pledges (offers of help):"]
    lines += [_aid(e, me) for e in aid["open_pledges"]] or ["  (none)"]
    if aid["matches"]:
        lines += ["", "Matches (pledge -> request):"]
        lines += [f"  {short(p)} -> {short(r)}" for p, r in aid["matches"]]
    if aid["fulfilled"]:
        lines += ["", "Fulfilled:"] + [_aid(e, me) for e in aid["fulfilled"]]
    return lines


def _totals_lines(fund: dict[str, Any]) -> list[str]:
    """Totals per currency and the forecast: amounts of different currencies are never added."""
    lines: list[str] = []
    if fund.get("totals"):
        lines.append("Per currency (never added across currencies):")
        for t in fund["totals"]:
            code = t["currency"]
            parts = [
                f"received {format_amount(t['received'], code)}",
                f"disbursed {format_amount(t['disbursed'], code)}",
                f"balance {format_amount(t['balance'], code)}",
            ]
            for key, label in (("awaiting", "awaiting receipt"), ("pledged", "pledged on the board"),
                               ("monthly", "expected monthly")):  # fmt: skip
                if t[key]:
                    parts.append(f"{label} {format_amount(t[key], code)}")
            lines.append(f"  {code}: " + ", ".join(parts))
    if fund.get("forecast"):
        lines.append("Forecast (monthly contributions and pledges):")
        for f in fund["forecast"]:
            code = f["currency"]
            parts = []
            if f["contributions"]:
                parts.append(f"contributions {format_amount(f['contributions'], code)}"
                             f" ({format_amount(f['confirmed'], code)} confirmed)")  # fmt: skip
            if f["pledges"]:
                parts.append(f"pledges {format_amount(f['pledges'], code)}")
            lines.append(f"  {f['month']} {code}: " + ", ".join(parts))
    monthly = [r for r in fund.get("recurring", []) if r["type"] == "contribution"]
    if monthly:
        lines.append("Monthly contributions:")
        for r in monthly:
            until = f" to {r['last']}" if r["last"] else " until stopped"
            done = ", ".join(r["confirmed"]) or "none yet"
            lines.append(
                f"  [{short(r['id'])}] {format_amount(r['amount'], r['currency'])} from"
                f" {shown(r['author_name'], NAME)}, {r['first']}{until}; confirmed: {done}"
            )
    return lines


def ledger_lines(views: dict[str, Any]) -> list[str]:
    fund = views["fund"]
    lines = ["Balance: " + (", ".join(format_amount(a, c) for c, a in fund["balances"]) or "nothing confirmed yet")]
    lines += _totals_lines(fund)
    if fund["pending"]:
        lines.append("Awaiting a treasurer's receipt:")
        lines += [
            f"  [{short(e['op'])}] {format_amount(e['amount'], e['currency'])} from {shown(e['signer_name'], NAME)}"
            for e in fund["pending"]
        ]
    lines.append("Ledger (every entry with who signed it):")
    months = {i["receipt"]: i["month"] for i in fund.get("installments", [])}
    for e in fund["entries"]:
        ref = f" for {short(e['ref'])}" if e["ref"] else ""
        ref += f" ({months[e['op']]})" if e["op"] in months else ""
        note = f" · {shown(e['note'])}" if e["note"] else ""
        lines.append(
            f"  [{short(e['op'])}] {when(e['ts'])} {shown(e['entry']):<12}"
            f" {format_amount(e['amount'], e['currency']):>14} signed by {shown(e['signer_name'], NAME)}{ref}{note}"
        )
    return lines


def _rule(rule: dict[str, Any]) -> str:
    consent = ", consent" if rule["consent"] else ""
    return f"quorum {rule['quorum_pct']}%, threshold {rule['threshold_pct']}%{consent}"


_CHARTER_FLAGS = (
    ("history", "newcomers read history"),
    ("members_can_invite", "members may invite"),
    ("confirm_joins", "an organizer confirms joins"),
)


def _onoff(value: object) -> str:
    return "on" if value else "off"


def _short_rule(rule: dict[str, Any]) -> str:
    window = rule.get("closes_s", 72 * 3600)
    # A voting window other than the default shows as @48h (as `--rule spend=50/60@48h` sets it).
    shown_window = "" if window == 72 * 3600 else f"@{window // 3600}h" if window % 3600 == 0 else f"@{window // 60}m"
    return f"{rule['quorum_pct']}/{rule['threshold_pct']}" + ("/consent" if rule["consent"] else "") + shown_window


def charter_summary(charter: dict[str, Any]) -> str:
    """A charter's settings on one line (its guidelines text is only counted)."""
    flags = [f"{label} {_onoff(charter[key])}" for key, label in _CHARTER_FLAGS]
    rules = ", ".join(f"{kind} {_short_rule(rule)}" for kind, rule in charter["rules"].items())
    guidelines = f"guidelines {len(charter['text'])} characters"
    return " · ".join([*flags, f"rules (quorum/threshold) {rules}", guidelines])


def charter_changes(current: dict[str, Any] | None, proposed: dict[str, Any]) -> str:
    """What adopting ``proposed`` would change in the charter in force ("" if unknown or nothing)."""
    if not current:
        return ""
    changes = [f"{label} {_onoff(current[key])} -> {_onoff(proposed[key])}"
               for key, label in _CHARTER_FLAGS if current[key] != proposed[key]]  # fmt: skip
    changes += [
        f"{kind} rule {_short_rule(current['rules'][kind])} -> {_short_rule(rule)}"
        for kind, rule in proposed["rules"].items()
        if current["rules"].get(kind) != rule
    ]
    if current["text"] != proposed["text"]:
        changes.append("new guidelines text")
    if current.get("alloc") != proposed.get("alloc"):
        changes.append("no allocation rules" if proposed.get("alloc") is None else "new allocation rules for the fund")
    return "; ".join(changes)


def time_left(closes_at: int, now: float) -> str:
    """How long a proposal stays open, coarsely: '2d 5h left', '40 min left', 'closing'."""
    left = int(closes_at - now)
    if left <= 0:
        return "closing"
    if left >= 86_400:
        return f"{left // 86_400}d {left % 86_400 // 3600}h left"
    if left >= 3600:
        return f"{left // 3600}h {left % 3600 // 60} min left"
    return f"{max(1, left // 60)} min left"


def awaits_my_vote(p: dict[str, Any], me: str | None) -> bool:
    """An open proposal I am eligible for and have not voted on (the client's reminder)."""
    return (
        me is not None
        and p["status"] == "open"
        and me in p.get("voters", ())
        and all(v["voter"] != me for v in p["votes"])
    )


def proposal_lines(views: dict[str, Any], now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    lines = []
    for p in views["proposals"]:
        rule = _rule(p["rule"])
        head = f"[{short(p['id'])}] {shown(p['title'])} ({shown(p['kind'])}) · {shown(p['status']).upper()}"
        if p["status"] == "open" and "closes_at" in p:
            head += f" · {time_left(p['closes_at'], now)} (closes {stamp_utc(p['closes_at'])})"
        lines.append(f"{head} · by {shown(p['author_name'], NAME)}")
        details = p["details"]
        if p["kind"] == "spend" and isinstance(details, dict):
            recipient = details["recipient"]
            to = short(recipient) if len(recipient) == 64 else shown(recipient, NAME)
            money = format_amount(details["amount"], details["currency"])
            lines.append(f"    spend {money} to {to}: {shown(details['purpose'])}")
        elif p["kind"] == "charter" and isinstance(details, dict):
            lines.append(f"    charter: {charter_summary(details)}")
            changed = charter_changes(views.get("charter"), details)
            if changed and p["status"] == "open":
                lines.append(f"    changes: {changed}")
        lines.append(
            f"    approve {p['approve']} · object {p['object']} · abstain {p['abstain']} of {p['eligible']} ({rule})"
        )
        names = p.get("voter_names")
        if names:
            voted = {v["voter"] for v in p["votes"]}
            marks = [
                f"{shown(n, NAME)}{'' if i in voted else ' (not voted)'}"
                for i, n in zip(p["voters"], names, strict=True)
            ]
            lines.append(f"    eligible: {', '.join(marks)}")
    return lines or ["(no proposals)"]


def stamp_utc(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


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
