"""`kith node`, `kith relay ...`, `kith status`, `kith connect`, `kith sync`: running nodes."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from kith.identity.errors import KithError, UsageError
from kith.identity.keystore import KeystoreData
from kith.p2pnet.addresses import check_announce, is_public
from kith.p2pnet.config import DEFAULT_NODE_LISTEN, DEFAULT_NODE_PORT, NodeConfig
from kith.p2pnet.control import socket_in_use
from kith.p2pnet.keyfile import Keystore
from kith.tui.commands.schema_args import add_action_arguments, schema_argument
from kith.tui.context import Context
from kith.tui.member_text import LINE, NAME, visible
from kith.tui.passphrase import ask_existing, ask_new


def register(sub: argparse._SubParsersAction) -> None:
    node = sub.add_parser("node", help="run your node in the foreground (Ctrl+C stops it)")
    _network_options(node)
    node.set_defaults(handler=cmd_node)

    relay = sub.add_parser("relay", help="run or manage a relay (an always-on node that stores ciphertext)")
    relay_sub = relay.add_subparsers(dest="relay_command", metavar="ACTION")
    relay_init = relay_sub.add_parser("init", help="create this relay's keys (no member identity)")
    relay_init.set_defaults(handler=cmd_relay_init)
    allow = relay_sub.add_parser("allow", help="serve a circle, with the relay token its organizer gave you")
    allow.add_argument("token")
    allow.set_defaults(handler=cmd_relay_allow)
    for action, text in (
        ("add", "organizers: list a relay in a circle, so members' nodes and invites use it"),
        ("remove", "organizers: take a relay off a circle's list"),
    ):
        change = relay_sub.add_parser(action, help=text)
        help_line = "the relay's address, as it prints: /ip4/HOST/tcp/4747/p2p/PEERID"
        add_action_arguments(change, f"relay.{action}", helps={"address": help_line})
        change.set_defaults(handler=cmd_relay_change, relay_action=action)
    listing = relay_sub.add_parser("list", help="a circle's relays, and whether your node reaches each now")
    listing.add_argument("circle")
    listing.set_defaults(handler=cmd_relay_list)
    run = relay_sub.add_parser("run", help="run the relay in the foreground (the default action)")
    _network_options(run)
    run.set_defaults(handler=cmd_relay_run)
    _network_options(relay)
    relay.set_defaults(handler=cmd_relay_run)

    status = sub.add_parser("status", help="show the running node: peers, circles, sync state")
    status.set_defaults(handler=cmd_status)

    connect = sub.add_parser("connect", help="ask the running node to connect to a peer address")
    schema_argument(connect, "connect", "address", help="/ip4/HOST/tcp/PORT/p2p/PEERID")
    connect.set_defaults(handler=cmd_connect)

    sync = sub.add_parser("sync", help="reconcile now with every connected peer")
    sync.set_defaults(handler=cmd_sync)

    stop = sub.add_parser("stop", help="stop the running node")
    stop.set_defaults(handler=cmd_stop)


def _network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help="address to listen on (repeatable; a member's node listens on 127.0.0.1:4748 by default, so only"
        " this machine can connect to it: /ip4/0.0.0.0/tcp/4748 accepts direct links; a relay: 0.0.0.0:4747)",
    )
    parser.add_argument(
        "--announce",
        action="append",
        metavar="MULTIADDR",
        help="address peers should dial, e.g. /dns4/relay.example.org/tcp/4747 or /ip4/203.0.113.7/tcp/4747"
        " (repeatable; default: the listening addresses on this host's interfaces)",
    )
    parser.add_argument("--bootstrap", action="append", metavar="MULTIADDR", help="peer to dial (repeatable)")
    parser.add_argument("--passphrase-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="log debug details")


def _config(ctx: Context, args: argparse.Namespace, *, relay: bool) -> NodeConfig:
    config = NodeConfig.load(ctx.home.config, relay=relay)
    if getattr(args, "listen", None):
        config.listen = args.listen
    elif not relay and config.listen == [DEFAULT_NODE_LISTEN] and not _port_free(DEFAULT_NODE_PORT):
        # Another node on this machine has the default port: take any free one, and say so.
        print(f"note: port {DEFAULT_NODE_PORT} is in use (another kith node?); using a free port", file=sys.stderr)
        config.listen = ["/ip4/127.0.0.1/tcp/0"]
    if getattr(args, "announce", None):
        config.announce = [check_announce(a) for a in args.announce]
    if getattr(args, "bootstrap", None):
        config.bootstrap = list(config.bootstrap) + args.bootstrap
    return config


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node's listener does
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - is the port free where the relay will listen? closed at once
        except OSError:
            return False
    return True


def _passphrase(ctx: Context, args: argparse.Namespace) -> str:
    fd = getattr(args, "passphrase_fd", None)
    if fd is not None:
        with os.fdopen(fd, "rb", closefd=True) as handle:
            raw = handle.read(4097)
        text = raw.decode("utf-8").rstrip("\n")
        if not text:
            raise UsageError("no passphrase on the passphrase descriptor")
        return text
    return ask_existing(ctx.passphrase_file)


def _run_node(ctx: Context, args: argparse.Namespace, *, relay: bool) -> int:
    import trio

    from kith.p2pnet.allocator import fix_mmap_threshold, trim_periodically
    from kith.p2pnet.api import build_methods
    from kith.p2pnet.logsetup import setup_logging
    from kith.p2pnet.node import Node

    if relay:
        # A relay runs for days taking everyone's bursts: they must not leave its heap at the
        # burst's high-water mark. Members keep glibc's default: pinned, their gossip
        # throughput fell ~12% (mesh_ops_per_s 1,166 and 1,219 against 1,318 and 1,431).
        fix_mmap_threshold()
    if not ctx.home.exists():
        hint = "kith relay init" if relay else "kith init"
        raise UsageError(f"no keys in {ctx.home.root}; run '{hint}' first")
    if socket_in_use(ctx.home.socket):
        raise UsageError(f"a node is already running for {ctx.home.root}")
    keystore = Keystore.unlock(ctx.home.keystore, _passphrase(ctx, args))
    if relay and keystore.data.identity is not None:
        raise UsageError("this home holds a member identity; a relay needs its own home (kith --home DIR relay init)")
    if not relay and keystore.data.identity is None:
        raise UsageError("this home belongs to a relay; run 'kith relay' here, or use another --home for a member")
    setup_logging(ctx.home.logs, verbose=args.verbose)
    node = Node(
        ctx.home, keystore, _config(ctx, args, relay=relay), relay=relay, clock=_clock(), control_api=build_methods
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            if relay:
                node.start_soon(trim_periodically)  # (the relay's heap after bursts: allocator.py)
            print(f"kith {'relay' if relay else 'node'} running; peer id {node.net.peer_id}", flush=True)
            for address in node.net.listen_addresses():
                print(f"  listening on {address}", flush=True)
            if relay:
                print("  organizers attach it to a circle with: kith relay add CIRCLE ADDRESS", flush=True)
                if not node.config.announce and not any(is_public(a) for a in node.net.listen_addresses()):
                    print(
                        "  note: none of these is a public address; members elsewhere cannot reach it unless you"
                        " run it with --announce /dns4/NAME/tcp/PORT (or /ip4/PUBLIC-IP/tcp/PORT) and forward the port",
                        flush=True,
                    )

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        # A failure inside the node's nursery arrives wrapped; show the user the real one.
        matched, _rest = group.split(KithError)
        if matched is None:
            raise
        leaf: BaseException = matched
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None
    return 0


CLOCK_SKEW_ENV = "KITH_INSECURE_TEST_CLOCK_SKEW_S"
"""Test only: run the node with its clock this many seconds off (the soak's clock-skew fault)."""


def _clock() -> Callable[[], float]:
    raw = os.environ.get(CLOCK_SKEW_ENV)
    if not raw:
        return time.time
    try:
        skew = float(raw)
    except ValueError:
        raise UsageError(f"{CLOCK_SKEW_ENV} must be a number of seconds") from None
    print(f"warning: {CLOCK_SKEW_ENV} is set: this node's clock is {skew:+.0f} s off (tests only)", file=sys.stderr)
    return lambda: time.time() + skew


def cmd_node(ctx: Context, args: argparse.Namespace) -> int:
    return _run_node(ctx, args, relay=False)


def cmd_relay_run(ctx: Context, args: argparse.Namespace) -> int:
    return _run_node(ctx, args, relay=True)


def cmd_relay_init(ctx: Context, args: argparse.Namespace) -> int:
    from kith.tui.commands.identity_cmds import kdf_params_from_env

    if ctx.home.exists():
        raise UsageError(f"keys already exist in {ctx.home.root}")
    passphrase = ask_new(ctx.passphrase_file)
    ctx.home.ensure()
    Keystore.create(ctx.home.keystore, passphrase, KeystoreData.generate(None), kdf_params_from_env())
    ctx.emit({"created": True, "home": str(ctx.home.root)}, f"Relay keys created in {ctx.home.root}")
    return 0


def cmd_relay_allow(ctx: Context, args: argparse.Namespace) -> int:
    from kith.p2pnet.api import allow_relay_topic
    from kith.sync.relaytoken import RelayToken

    token = RelayToken.decode(args.token)
    if socket_in_use(ctx.home.socket):
        from kith.tui.rpc import NodeClient

        with NodeClient(ctx.home.socket) as client:
            result = client.call("relay.allow", token=args.token)
    else:
        keystore = Keystore.unlock(ctx.home.keystore, ask_existing(ctx.passphrase_file))
        if keystore.data.identity is not None:
            raise UsageError("this home holds a member identity; relay tokens go to a relay's home")
        entry = allow_relay_topic(keystore.data.extra, token)
        keystore.save()
        result = {"topic": token.topic.hex(), "label": token.label, "epochs": len(entry.relay_keys)}
    ctx.emit(result, f"Now serving {visible(result['label'], NAME)} (topic {result['topic'][:16]}...)")
    return 0


_T = TypeVar("_T")


def _call(ctx: Context, method: str, **params: object) -> object:
    from kith.tui.rpc import NodeClient

    with NodeClient(ctx.home.socket) as client:
        return client.call(method, **params)


def _reply(value: object, kind: type[_T], method: str) -> _T:
    """The node's answer, if it has the shape this command reads; else one clear line."""
    if not isinstance(value, kind):
        raise KithError(f"the node answered {method} with a {type(value).__name__}, not a {kind.__name__}")
    return value


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    status = _reply(_call(ctx, "status"), dict, "status")
    lines = [
        f"{visible(status['mode'])} node {visible(status['peer_id'])}  (up {status['uptime_s']:.0f}s)",
        *[f"  listening on {visible(a)}" for a in status["addresses"]],
        f"peers: {len(status['peers'])}",
    ]
    now = time.time()
    for peer in status["peers"]:
        last = peer["last_sync"]
        if last is None:
            detail = "not synced yet"
        elif last["error"]:
            detail = f"last sync failed: {visible(last['error'])}"
        else:
            detail = f"synced {now - (last['finished'] or now):.0f}s ago (+{last['received']} received)"
        lines.append(f"  {visible(peer['peer'][:20])}...  {detail}")
    for circle in status["circles"]:
        synced = circle.get("last_sync")
        when = f"last synced {now - synced:.0f}s ago" if synced else "not synced yet"
        name = f"circle {visible(circle['name'], NAME)} ({circle['id'][:8]})"
        lines.append(f"{name}: {circle['ops']} ops, {circle['envelopes']} envelopes, {when}")
        if not circle.get("relays"):
            lines.append("  no relay listed: history reaches you only from members online at the same time")
        elif not circle.get("relay_reachable"):
            lines.append("  no relay reachable now: check your network, or ask an organizer whether it runs")
        lines += [relay_line(r, now) for r in circle.get("relays") or []]
        if circle.get("advice"):
            lines.append(f"  {visible(circle['advice'], LINE)}")
    for topic in status["relay_topics"]:
        used = topic["bytes"] / max(1, topic["quota_bytes"]) * 100
        lines.append(f"serving {visible(topic['label'], NAME)}: {topic['envelopes']} envelopes, {used:.1f}% of quota")
    if status["refused"]:
        lines.append("refused: " + ", ".join(f"{k} {v}" for k, v in sorted(status["refused"].items())))
    ctx.emit(status, "\n".join(lines))
    return 0


def cmd_relay_change(ctx: Context, args: argparse.Namespace) -> int:
    method = f"relay.{args.relay_action}"
    result = _reply(_call(ctx, method, circle=args.circle, address=args.address), dict, method)
    if result.get("rejected"):
        ctx.emit(result, f"kith: the circle did not accept this change: {visible(result['rejected'], LINE)}")
        return 1
    done = "added; members' nodes dial it and new invites carry it" if args.relay_action == "add" else "removed"
    ctx.emit(result, f"relay {done}")
    return 0


def relay_line(relay: dict[str, object], now: float) -> str:
    """One relay of a circle as `kith relay list` and `kith status` show it."""
    address = visible(str(relay["address"]), LINE)
    if relay["connected"]:
        return f"  relay {address}: reachable"
    reached = relay.get("reached")
    seen = f", last reached {now - float(reached):.0f}s ago" if isinstance(reached, (int, float)) else ""
    error = relay.get("error")
    why = f" ({visible(str(error), LINE)})" if error else ""
    return f"  relay {address}: NOT reachable{seen}{why}"


def cmd_relay_list(ctx: Context, args: argparse.Namespace) -> int:
    relays = _reply(_call(ctx, "relays", circle=args.circle), list, "relays")
    now = time.time()
    text = "\n".join(relay_line(r, now) for r in relays) or (
        "this circle lists no relay: members reach each other only while online together"
        " ('kith relay add CIRCLE ADDRESS', organizers)"
    )
    ctx.emit(relays, text)
    return 0


def cmd_connect(ctx: Context, args: argparse.Namespace) -> int:
    result = _reply(_call(ctx, "connect", address=args.address), dict, "connect")
    ctx.emit(result, f"connected to {visible(result['peer'], LINE)}")
    return 0


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    result = _reply(_call(ctx, "sync"), dict, "sync")
    lines = [
        f"{visible(r['peer'][:20])}...: "
        + (f"failed: {visible(r['error'])}" if r["error"] else f"+{r['received']} / sent {r['sent']}")
        for r in result["synced"]
    ]
    ctx.emit(result, "\n".join(lines) or "no peers connected")
    return 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    _call(ctx, "stop")
    ctx.emit({"stopping": True}, "node stopping")
    return 0
