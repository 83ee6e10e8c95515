"""Invites, joining, approving, verification, key rotation, backups and panic."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kith.identity.errors import UsageError
from kith.identity.strength import check_new_passphrase
from kith.p2pnet.api import MAX_INVITE_S
from kith.p2pnet.control import socket_in_use
from kith.p2pnet.panic import WARN_BOUND_S, list_home, looks_like_home, wipe_home
from kith.tui.context import Context
from kith.tui.member_text import LINE, NAME, visible
from kith.tui.passphrase import ask_existing, ask_new, read_passphrase_file
from kith.tui.textinput import add_text_source, read_text

if TYPE_CHECKING:
    from kith.tui.rpc import NodeClient


def _call(ctx: Context, method: str, **params: Any) -> Any:
    from kith.tui.rpc import NodeClient

    with NodeClient(ctx.home.socket) as client:
        return client.call(method, **params)


_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, longest_s: int = MAX_INVITE_S) -> float | None:
    """'7d', '12h', '30m', '90s' or 'never'; more than zero and at most ``longest_s``,
    refused in the units the person typed (``--expires 400d``: at most 366d)."""
    if text.strip().lower() in ("never", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise UsageError(f"{text!r} is not a duration like 7d, 12h, 30m or never")
    unit = match.group(2) or "s"
    seconds = float(match.group(1)) * _UNIT_S[unit]
    if seconds < 1:
        raise UsageError(f"--expires {text.strip()} is no time at all: give at least 1s (e.g. 30m or 7d), or never")
    if seconds > longest_s:
        most = f"{longest_s // _UNIT_S[unit]:g}{unit}" if unit != "s" else f"{longest_s}s"
        raise UsageError(f"--expires {text.strip()} is too long: at most {most} ({longest_s // 86400} days), or never")
    return seconds


def register(sub: argparse._SubParsersAction) -> None:
    invite = sub.add_parser("invite", help="invite someone: prints a code (and a QR code) to give them")
    invite.add_argument("circle")
    invite.add_argument("--uses", type=int, default=1, help="how many people may join with it (default 1)")
    invite.add_argument("--expires", default="7d", help="how long it stays valid: 7d, 12h, 30m or never")
    invite.add_argument("--no-qr", action="store_true", help="print only the code")
    invite.set_defaults(handler=cmd_invite)

    invites = sub.add_parser("invites", help="list a circle's invites, or revoke one")
    invites.add_argument("circle")
    invites.add_argument("--revoke", metavar="ID", help="revoke the invite with this id (prefix)")
    invites.set_defaults(handler=cmd_invites)

    join = sub.add_parser("join", help="ask to join a circle with an invite code")
    join.add_argument("code", help="the KITH-INVITE: code you were given")
    join.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for the welcome")
    join.set_defaults(handler=cmd_join)

    joins = sub.add_parser("joins", help="your pending join requests")
    joins.set_defaults(handler=cmd_joins)

    requests = sub.add_parser("requests", help="organizers: join requests waiting for approval")
    requests.add_argument("circle")
    requests.set_defaults(handler=cmd_requests)

    approve = sub.add_parser("approve", help="organizers: let someone in (they receive the circle's keys)")
    approve.add_argument("circle")
    approve.add_argument("member", help="their member id (prefix), as 'kith requests' shows")
    add_text_source(approve, "vouch note", flag="--vouch")
    approve.set_defaults(handler=cmd_approve)

    safety = sub.add_parser("safety", help="a member's fingerprint and your shared safety number")
    safety.add_argument("circle")
    safety.add_argument("member")
    safety.set_defaults(handler=cmd_safety)

    verify = sub.add_parser("verify", help="mark a member verified after comparing safety numbers in person")
    verify.add_argument("circle")
    verify.add_argument("member")
    verify.add_argument("--yes", action="store_true", help="do not ask whether the numbers matched")
    verify.set_defaults(handler=cmd_verify)

    rotate = sub.add_parser("rotate", help="organizers: replace the circle's key now")
    rotate.add_argument("circle")
    rotate.set_defaults(handler=cmd_rotate)

    backup = sub.add_parser("backup", help="write all your keys to one encrypted file")
    backup.add_argument("file")
    backup.add_argument("--backup-passphrase-file", help="read the backup's passphrase from this file")
    backup.set_defaults(handler=cmd_backup)

    restore = sub.add_parser("restore", help="set up this device from a backup file")
    restore.add_argument("file")
    restore.add_argument("--backup-passphrase-file", help="read the backup's passphrase from this file")
    restore.set_defaults(handler=cmd_restore)

    panic = sub.add_parser("panic", help="destroy your keys and data on this device, now")
    panic.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    panic.add_argument(
        "--warn",
        action="store_true",
        help="also tell your circles this device is compromised (only a running node can; it signs from memory)",
    )
    panic.set_defaults(handler=cmd_panic)


def cmd_invite(ctx: Context, args: argparse.Namespace) -> int:
    if not 1 <= args.uses <= 1000:
        raise UsageError("--uses must be between 1 and 1000")
    result = _call(ctx, "invite.create", circle=args.circle, uses=args.uses, expires_s=parse_duration(args.expires))
    expires = (
        "never" if result["expires"] is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(result["expires"]))
    )
    lines = []
    if not args.no_qr:
        lines += [result["qr"], ""]
    lines += [
        result["code"],
        "",
        f"Valid for {args.uses} {'person' if args.uses == 1 else 'people'} until {expires}.",
        "Give it to them privately (in person, or over an end-to-end encrypted channel); they run",
        "'kith join CODE'. Anyone holding it can ask to join until it is used up, expires or is revoked.",
    ]
    ctx.emit(result, "\n".join(lines))
    return 0


def cmd_invites(ctx: Context, args: argparse.Namespace) -> int:
    if args.revoke:
        result = _call(ctx, "invite.revoke", circle=args.circle, invite=args.revoke)
        ctx.emit(result, "invite revoked")
        return 0
    invites = _call(ctx, "invites", circle=args.circle)
    lines = []
    for invite in invites:
        state = "revoked" if invite["revoked"] else f"{invite['used']}/{invite['uses']} used"
        expires = "never" if invite["expires"] is None else time.strftime("%Y-%m-%d", time.localtime(invite["expires"]))
        lines.append(f"{invite['invite'][:8]}  {state}, expires {expires}")
    ctx.emit(invites, "\n".join(lines) or "no invites")
    return 0


def cmd_join(ctx: Context, args: argparse.Namespace) -> int:
    result = _call(ctx, "join", code=args.code)
    if not result.get("reached") and not result.get("peers"):
        raise UsageError(cannot_reach_inviter(result.get("unreached") or []))
    text = "Join request sent. Waiting for the circle to let you in."
    if args.wait:
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            pending = [j for j in _call(ctx, "joins") if j["topic"] == result["topic"]]
            if not pending:
                ctx.emit({**result, "status": "joined"}, "You are in. 'kith circles' lists your circles.")
                return 0
            if pending[0]["refused"]:
                raise UsageError(f"the circle refused the request: {visible(pending[0]['refused'], LINE)}")
            time.sleep(0.5)
        text += (
            " Still pending: the circle has not answered yet (if the person who invited you cannot add"
            " members, an organizer approves it with 'kith requests'); 'kith joins' shows where it stands."
        )
    ctx.emit(result, text)
    return 0


def cannot_reach_inviter(unreached: list[dict[str, str]]) -> str:
    """The one line `kith join` (and the client) give when no address in the invite answered."""
    if not unreached:
        return (
            "the invite names no address to reach the circle at, and your node is connected to no one;"
            " ask for a new invite, or connect to a member first ('kith connect ADDRESS')"
        )
    first = unreached[0]
    return (
        f"could not reach the person who invited you or any relay the invite names ({len(unreached)} address(es);"
        f" {visible(first['address'], LINE)}: {visible(first['error'], LINE)}). Your request is saved and your"
        " node sends it when one answers: check your internet connection, and ask them whether their kith (or"
        " their relay) is running; 'kith joins' shows where it stands"
    )


def cmd_joins(ctx: Context, args: argparse.Namespace) -> int:
    joins = _call(ctx, "joins")
    lines = [
        f"invite {visible(j['invite'], 8)}: "
        + (f"refused: {visible(j['refused'], LINE)}" if j["refused"] else "waiting for approval")
        for j in joins
    ]
    ctx.emit(joins, "\n".join(lines) or "no pending join requests")
    return 0


def cmd_requests(ctx: Context, args: argparse.Namespace) -> int:
    requests = _call(ctx, "requests", circle=args.circle)
    lines = [
        f"{visible(r['member'], 8)}  {visible(r['name'], NAME)}  fingerprint {visible(r['fingerprint'], LINE)}\n"
        f"          safety number with you: {visible(r['safety_number'], LINE)} (compare it with them first)"
        for r in requests
    ]
    ctx.emit(requests, "\n".join(lines) or "no one is waiting")
    return 0


def cmd_approve(ctx: Context, args: argparse.Namespace) -> int:
    result = _call(ctx, "approve", circle=args.circle, member=args.member, vouch=read_text(args, ctx.home))
    ctx.emit(result, f"Welcomed {result['member'][:8]}: they now receive the circle's keys.")
    return 0


def _safety_text(info: dict[str, Any]) -> str:
    mark = "verified" if info["verified"] else "not verified"
    return f"Fingerprint:   {info['fingerprint']}\nSafety number: {info['safety_number']}\n({mark})"


def cmd_safety(ctx: Context, args: argparse.Namespace) -> int:
    info = _call(ctx, "member.card", circle=args.circle, member=args.member)
    ctx.emit(info, _safety_text(info))
    return 0


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    info = _call(ctx, "member.card", circle=args.circle, member=args.member)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("compare the numbers first; pass --yes to confirm without a prompt")
        print(visible(_safety_text(info), None, multiline=True))
        answer = input("Did you compare this number with them, in person or on a call, and does it match? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            ctx.emit({"verified": False}, "Not marked. If the numbers differ, tell an organizer before trusting them.")
            return 1
    result = _call(ctx, "verify", circle=args.circle, member=args.member)
    ctx.emit(result, f"Marked {result['member'][:8]} as verified.")
    return 0


def cmd_rotate(ctx: Context, args: argparse.Namespace) -> int:
    result = _call(ctx, "rotate", circle=args.circle)
    ctx.emit(result, "The circle has a new key; everyone still in it receives it.")
    return 0


def _backup_passphrase(args: argparse.Namespace, *, new: bool) -> str:
    if args.backup_passphrase_file:
        passphrase = read_passphrase_file(args.backup_passphrase_file)
        if new:
            check_new_passphrase(passphrase)  # the same rule as the keystore's, from a file too
        return passphrase
    if new:
        return ask_new(None, label="Passphrase for the backup")
    return ask_existing(None)


def cmd_backup(ctx: Context, args: argparse.Namespace) -> int:
    from kith.p2pnet.keyfile import Keystore, write_backup
    from kith.tui.commands.identity_cmds import kdf_params_from_env

    if not ctx.home.exists():
        raise UsageError(f"no keys in {ctx.home.root} to back up")
    keystore = Keystore.unlock(ctx.home.keystore, ask_existing(ctx.passphrase_file))
    path = Path(args.file).expanduser()
    write_backup(path, keystore.data, _backup_passphrase(args, new=True), kdf_params_from_env())
    circles = len(keystore.data.circles)
    ctx.emit(
        {"file": str(path), "circles": circles},
        f"Backed up your identity and the keys of {circles} circle(s) to {path}.\n"
        "Keep it somewhere safe and separate from this device: anyone with it and its passphrase is you.",
    )
    return 0


def cmd_restore(ctx: Context, args: argparse.Namespace) -> int:
    from kith.p2pnet.keyfile import Keystore, read_backup
    from kith.tui.commands.identity_cmds import kdf_params_from_env, whole_or_nothing

    if ctx.home.exists():
        raise UsageError(f"{ctx.home.root} already holds keys; restore into an empty home (--home DIR)")
    data = read_backup(Path(args.file).expanduser(), _backup_passphrase(args, new=False))
    passphrase = ask_new(ctx.passphrase_file, label="New passphrase for this device")
    with whole_or_nothing(ctx.home):
        ctx.home.ensure()
        Keystore.create(ctx.home.keystore, passphrase, data, kdf_params_from_env())
    ctx.emit(
        {"restored": True, "circles": len(data.circles), "relays": len(data.relays)},
        f"Restored your identity and {len(data.circles)} circle(s). Start your node ('kith node' or 'kith'):\n"
        f"it fetches the circles' history again from {len(data.relays)} known relay(s) and peers.",
    )
    return 0


def cmd_panic(ctx: Context, args: argparse.Namespace) -> int:
    """Wipe at once, whatever else fails: no passphrase, no network needed (p2pnet/panic.py)."""
    root = ctx.home.root
    if not os.path.lexists(root):
        raise UsageError(f"nothing to destroy: {root} does not exist (already wiped, or another --home?)")
    if not looks_like_home(root):
        raise UsageError(f"{root} does not look like a kith home (no keystore, store or log); nothing destroyed")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to destroy data without confirmation; pass --yes")
        answer = input(f"Destroy every key and message in {root}? This cannot be undone. Type 'destroy': ")
        if answer.strip().lower() != "destroy":
            ctx.emit({"destroyed": False}, "Nothing destroyed.")
            return 1
    started = time.monotonic()
    inventory = list_home(root)
    node = _connect_to_node(ctx)  # before the wipe removes its socket; milliseconds
    asking = threading.Thread(target=_stop_node_writing, args=(node, args.warn), daemon=True)
    asking.start()  # the wipe does not wait for the node's answer: it starts now
    report = wipe_home(root)
    asking.join(timeout=WARN_BOUND_S)
    if node.pid is not None:
        _wait_or_kill(node.pid, deadline=started + WARN_BOUND_S + 2.0)
    if node.running:
        report = wipe_home(root)  # anything the node wrote before it stopped writing
    # What is gone, by the inventory taken before anything was touched: the wipes of this
    # process and of the node both count, and nothing is claimed that is still there.
    gone = [f for f in inventory if not os.path.lexists(f.path)]
    kinds = Counter(f.kind for f in gone)
    left = len(inventory) - len(gone) + report.errors
    result = {
        "destroyed": report.home_removed,
        "files": len(gone),
        "bytes": sum(f.size for f in gone),
        "kinds": dict(kinds),
        "home_removed": report.home_removed,
        "node_running": node.running,
        "warned": node.warned,
        "left": left,
        "seconds": round(time.monotonic() - started, 2),
    }
    ctx.emit(result, _panic_text(root, result, warn=args.warn))
    return 0 if report.home_removed else 1


@dataclass
class _PanickedNode:
    running: bool = False
    client: NodeClient | None = None
    pid: int | None = None
    warned: list[str] = field(default_factory=list)


def _connect_to_node(ctx: Context) -> _PanickedNode:
    """Connect to the running node, if any (never raises: a dead node is no reason to wait)."""
    from kith.tui.rpc import NodeClient

    node = _PanickedNode()
    if not socket_in_use(ctx.home.socket):
        return node
    node.running = True
    try:
        node.client = NodeClient(ctx.home.socket, timeout=WARN_BOUND_S)
    except Exception:  # noqa: BLE001 - a node that cannot be reached is killed or simply outlived
        return node
    node.pid = node.client.peer_pid()
    return node


def _stop_node_writing(node: _PanickedNode, warn: bool) -> None:
    """Tell the node to panic (it stops writing, warns if asked, answers); never raises."""
    if node.client is None:
        return
    try:
        with node.client as client:
            reply = client.call("panic", warn=warn)
        node.warned = list(reply.get("warned", []))
        node.pid = node.pid or reply.get("pid")
    except Exception:  # noqa: BLE001, S110 - a hung or dying node must not stop the wipe
        pass


def _wait_or_kill(pid: int, *, deadline: float) -> None:
    """Wait for the node to exit by itself until ``deadline``, then kill it (never a process
    that merely inherited its pid: the start time must still match)."""
    started = _start_time(pid)
    while time.monotonic() < deadline:
        if not _alive(pid, started):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    while _alive(pid, started) and time.monotonic() < deadline + 2.0:
        time.sleep(0.05)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state first), or None where there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except FileNotFoundError:
        return []
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if fields is None:  # no /proc here: the signal check is all there is
        return True
    if not fields or fields[0] == "Z":  # gone, or a zombie (a child not yet reaped): it has exited
        return False
    return started is None or _start_time(pid) == started


def _panic_text(root: Path, result: dict[str, Any], *, warn: bool) -> str:
    kinds = result["kinds"]
    parts = [f"{count} {name}" for name, count in sorted(kinds.items())]
    size = result["bytes"] / (1024 * 1024)
    lines = [
        f"Overwrote and deleted {result['files']} file(s), {size:.1f} MiB, in {result['seconds']:.1f} s"
        + (f" ({', '.join(parts)})" if parts else "")
        + "."
    ]
    if result["home_removed"]:
        lines.append(f"{root} is gone.")
    else:
        lines.append(f"{result['left']} item(s) could not be removed: delete {root} by hand now.")
    if result["warned"]:
        lines.append(f"Warned {len(result['warned'])} circle(s) that this device is compromised.")
    elif warn and not result["node_running"]:
        lines.append("No node was running, so no circle was warned: tell an organizer another way.")
    elif warn:
        lines.append("The node could not warn any circle in time: tell an organizer another way.")
    return "\n".join(lines)
