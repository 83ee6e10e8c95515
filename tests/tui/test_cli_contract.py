"""Issue 14: a contract test for every `kith` command.

The parser is walked, so a new subcommand without a case here fails
``test_every_command_has_a_contract_case``. Every case runs the real `kith` against real
nodes (two members, Alice and Bob, and a relay, one world for the module): a good call
exits 0, and with --json prints one JSON document of the shape docs/API.md ("The command
line's --json") gives for that command, read from the doc's own table so the two cannot
drift. Then each bad input class that applies to the command's arguments (not UTF-8, a
control character, empty, huge, the wrong type) exits with the documented code and
exactly one line on stderr, and the world's circles are unchanged. Bytes that are not
UTF-8 go to a real process (the interpreter decodes argv); the other bad calls run the
same `main` in this process against the same nodes, to keep the module fast.

The cases run in the order below (later ones use ids earlier ones printed); the ones that
destroy or stop something (stop, panic) run against throwaway homes of their own.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file, wait_for

from kith.tui.cli import ERROR_LINE, EXIT_ERROR, EXIT_USAGE, build_parser, main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
KITH = str(Path(sys.executable).with_name("kith"))
ENV = {**os.environ, "KITH_INSECURE_TEST_KDF": "1"}
GLOBAL = {"help", "home", "json", "passphrase_file"}
HUGE = "a" * 100_000  # under Linux's 128 KiB limit for one argument


# --- the doc's table of --json shapes --------------------------------------------------


def documented_shapes() -> dict[tuple[str, ...], Any]:
    """docs/API.md's table "The command line's --json": command path -> parsed shape."""
    doc = (ROOT / "docs" / "API.md").read_text()
    section = doc.split("## The command line's --json", 1)[1].split("\n## ", 1)[0]
    shapes = {}
    for row in re.findall(r"^\| `kith ([a-z -]+?)(?: [A-Z].*?)?` \| `(.+?)`", section, re.MULTILINE):
        shapes[tuple(row[0].split())] = parse_shape(row[1])
    return shapes


def parse_shape(text: str) -> Any:
    """A shape: ``{a, b?, c: SHAPE, ...}`` (an object with exactly those keys, ``?``
    optional, ``...`` more allowed), ``[SHAPE]`` (a list of such items), ``[]`` (any
    list), ``text``, ``int``, ``bool``, ``null``, ``any``, or alternatives ``A|B``."""
    tokens = re.findall(r"\.\.\.|[{}\[\],:?|]|[a-z_]+", text)
    position = 0

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = tokens[position]
        assert expected is None or token == expected, f"{text!r}: expected {expected!r} at {token!r}"
        position += 1
        return token

    def one() -> Any:
        token = take()
        if token == "{":
            keys: dict[str, tuple[bool, Any]] = {}
            more = False
            while tokens[position] != "}":
                if tokens[position] == "...":
                    take()
                    more = True
                else:
                    key = take()
                    optional = tokens[position] == "?" and bool(take())
                    inner = take(":") and alternatives() if tokens[position] == ":" else "any"
                    keys[key] = (optional, inner)
                if tokens[position] == ",":
                    take()
            take("}")
            return ("object", keys, more)
        if token == "[":
            if tokens[position] == "]":
                take()
                return ("list", "any")
            inner = alternatives()
            take("]")
            return ("list", inner)
        assert token in ("text", "int", "bool", "null", "any"), f"{text!r}: unknown type {token!r}"
        return token

    def alternatives() -> Any:
        options = [one()]
        while position < len(tokens) and tokens[position] == "|":
            take()
            options.append(one())
        return options[0] if len(options) == 1 else ("either", options)

    shape = alternatives()
    assert position == len(tokens), f"{text!r}: left over {tokens[position:]}"
    return shape


def shape_problems(value: Any, shape: Any, where: str = "") -> list[str]:
    if shape == "any":
        return []
    if isinstance(shape, str):
        ok = {
            "text": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "null": value is None,
        }[shape]
        return [] if ok else [f"{where or 'the output'} is {value!r}, not {shape}"]
    if shape[0] == "either":
        found = [shape_problems(value, option, where) for option in shape[1]]
        return [] if any(not f for f in found) else found[0]
    if shape[0] == "list":
        if not isinstance(value, list):
            return [f"{where or 'the output'} is not a list"]
        return [p for i, item in enumerate(value) for p in shape_problems(item, shape[1], f"{where}[{i}]")]
    _, keys, more = shape
    if not isinstance(value, dict):
        return [f"{where or 'the output'} is not an object"]
    problems = [f"{where}.{key} is missing" for key, (optional, _) in keys.items() if key not in value and not optional]
    if not more:
        problems += [f"{where}.{key} is not in docs/API.md" for key in value if key not in keys]
    for key, (_, inner) in keys.items():
        if key in value:
            problems += shape_problems(value[key], inner, f"{where}.{key}")
    return problems


# --- the world: two members and a relay -------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = passphrase_file(root)
        self.relay = NodeProcess(make_home(root, "relay", relay=True), self.secret, relay=True).start()
        self.alice = NodeProcess(make_home(root, "alice"), self.secret).start()
        self.bob = NodeProcess(make_home(root, "bob"), self.secret).start()
        self.homes = {"alice": self.alice.home.root, "bob": self.bob.home.root, "relay": self.relay.home.root}
        self.saved: dict[str, Any] = {}
        self.others: list[subprocess.Popen[bytes]] = []

    def home(self, who: str) -> Path:
        return self.homes[who] if who in self.homes else self.root / who

    def run(self, who: str, args: list[str | bytes], stdin: str | bytes | None = None, json_out: bool = True) -> Result:
        argv: list[str | bytes] = [KITH, "--home", str(self.home(who)), "--passphrase-file", str(self.secret)]
        argv += ["--json"] if json_out else []
        argv += args
        data = stdin.encode() if isinstance(stdin, str) else stdin
        result = subprocess.run(
            argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True, env=ENV, timeout=120,
        )  # fmt: skip
        return Result(result.returncode, result.stdout.decode(), result.stderr.decode(errors="replace"))

    def run_here(self, who: str, args: list[str | bytes], stdin: str | None = None) -> Result:
        """`kith` in this process (the same `main`, talking to the same nodes): a bad call
        without a process start, so every class is tried for every command cheaply."""
        argv = ["--home", str(self.home(who)), "--passphrase-file", str(self.secret), "--json"]
        argv += [arg.decode(errors="surrogateescape") if isinstance(arg, bytes) else arg for arg in args]
        out, err = io.StringIO(), io.StringIO()
        stdin_text = io.TextIOWrapper(io.BytesIO((stdin or "").encode()))
        with (
            redirect_stdout(out),
            redirect_stderr(err),
            patch.object(sys, "stdin", stdin_text),
            patch.dict(os.environ, {"KITH_INSECURE_TEST_KDF": "1"}),
        ):
            code = main(argv)
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, who: str, *args: str, stdin: str | None = None) -> Any:
        result = self.run(who, list(args), stdin)
        assert result.code == 0, (args, result.err)
        return result.json if result.out.strip() else None

    def fingerprint(self) -> list[tuple[str, str, str]]:
        """Every circle's state on Alice and Bob: what a refused command must leave alone."""
        return sorted(
            (name, circle["id"], node.call("state_hash", circle=circle["id"])["state_hash"])
            for name, node in (("alice", self.alice), ("bob", self.bob))
            for circle in node.call("circles")
            if circle["name"] not in self.saved.get("changing", ())
        )

    def settled(self) -> list[tuple[str, str, str]]:
        """The fingerprint once what earlier calls set going has arrived: Alice and Bob
        agree on every circle they share (a barrier, not a pause)."""
        seen: list[list[tuple[str, str, str]]] = []

        def agreed() -> bool:
            seen.append(self.fingerprint())
            hashes: dict[str, set[str]] = {}
            for _, circle, state in seen[-1]:
                hashes.setdefault(circle, set()).add(state)
            return all(len(states) == 1 for states in hashes.values())

        wait_for(agreed, timeout=60, interval=0.2)
        return seen[-1]

    def close(self) -> None:
        for process in self.others:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for node in (self.bob, self.alice, self.relay):
            node.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("contract"))
    try:
        # Riverside: Alice's circle, served by the relay, with Bob in it (joined by the
        # contract's own `invite` and `join` cases below).
        built.saved["circle"] = built.ok("alice", "circle", "create", "-", stdin="Riverside\n")["id"][:8]
        built.ok("alice", "circle", "create", "-", stdin="Quay\n")  # where Alice adds Bob by his card
        built.ok("alice", "connect", built.relay.address)
        built.ok("bob", "connect", built.relay.address)
        built.saved["alice"] = built.ok("alice", "whoami")["member_id"][:8]
        bob = built.ok("bob", "whoami")
        built.saved["bob"], built.saved["bob_card"] = bob["member_id"][:8], bob["card"]
        yield built
    finally:
        built.close()


# --- the cases ----------------------------------------------------------------------------


@dataclass
class Case:
    who: str
    args: Callable[[World], list[str]]
    stdin: str | None = None
    after: Callable[[World, Any], None] = lambda world, out: None
    """What the good call leaves for later cases (ids), or checks beyond the shape."""
    bad_classes: tuple[str, ...] = ("not_utf8", "control", "empty", "huge", "wrong_type")
    json_out: bool = True
    note: str = ""


def save(key: str, path: Callable[[Any], Any]) -> Callable[[World, Any], None]:
    def keep(world: World, out: Any) -> None:
        world.saved[key] = path(out)

    return keep


def s(key: str) -> Callable[[World], str]:
    return lambda world: str(world.saved[key])


PREHANDLER = ("not_utf8", "control", "wrong_type")
"""Classes refused before the handler runs: safe for commands that would start something."""


def keys_delivered(circle: str, members: int = 2) -> Callable[[World, Any], None]:
    """A barrier: Alice sees every member of ``circle`` acknowledge its current key (the
    last thing a join, welcome or key change sets going)."""

    def wait(world: World, out: Any) -> None:
        def delivered() -> bool:
            found = world.alice.call("views", circle=world.saved.get(circle, circle), only=["members"])["members"]
            return len(found) == members and all(m["has_current_key"] for m in found)

        wait_for(delivered, timeout=60, interval=0.2)

    return wait


def _joined(world: World, out: Any) -> None:
    assert out["status"] == "joined"
    keys_delivered("circle")(world, out)


def _bob_asks_to_join_harbour(world: World, out: Any) -> None:
    """Harbour confirms every join: Bob's request waits for `kith approve`."""
    code = world.ok("alice", "invite", "Harbour")["code"]
    assert world.ok("bob", "join", code)["status"] == "pending"
    wait_for(lambda: world.run("alice", ["requests", "Harbour"]).json != [], timeout=60)


def _start_spare_relay(world: World, out: Any) -> None:
    """`kith relay init` made a relay home: run it with bare `kith relay` (the contract's
    good call for `relay`); `kith stop` stops it later."""
    assert out["created"] is True
    home = world.home("spare-relay")
    process = subprocess.Popen(
        [KITH, "--home", str(home), "--passphrase-file", str(world.secret), "relay",
         "--listen", "/ip4/127.0.0.1/tcp/0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    world.others.append(process)
    assert process.stdout is not None
    assert b"kith relay running" in process.stdout.readline()
    assert b"listening on" in process.stdout.readline()
    wait_for(lambda: (home / "node.sock").exists(), timeout=30)


def _approved_spend(world: World, out: Any) -> None:
    """Bob approves too: with every eligible vote in, the proposal is decided at once
    (one approval of two could still be outvoted until its closing time)."""
    proposal = world.saved["spend"]
    wait_for(
        lambda: any(p["id"].startswith(proposal) for p in world.run("bob", ["proposals", world.saved["circle"]]).json),
        timeout=60,
    )
    world.ok("bob", "vote", world.saved["circle"], proposal, "approve")

    def approved() -> bool:
        proposals = world.run("alice", ["proposals", world.saved["circle"]]).json
        return any(p["id"].startswith(proposal) and p["status"] == "approved" for p in proposals)

    wait_for(approved, timeout=60)


def _another_pledge(world: World, out: Any) -> None:
    """One still open, for `kith withdraw` (the first is fulfilled now)."""
    world.saved["spare_pledge"] = world.ok("bob", "pledge", world.saved["circle"], "time", stdin="an hour\n")["id"][:8]


def _alice_posts(world: World) -> None:
    """A post of Alice's that Bob's node holds: what the moderation cases report and hide."""
    post = world.ok("alice", "post", world.saved["circle"], stdin="Sam lives at 12 Elm Street\n")["id"][:8]
    world.saved["alice_post"] = post
    wait_for(lambda: any(i["id"].startswith(post) for i in world.run("bob", ["feed", world.saved["circle"]]).json[
        "feed"]), timeout=60, interval=0.2)  # fmt: skip


def _report_arrives(world: World, out: Any) -> None:
    """The report reaches Alice, the organizer, with Bob as the reporter; Bob's own node
    cannot list reports (he is not an organizer), and nothing in the circle names it."""
    assert out["id"] is None and out["private"]

    def listed() -> bool:
        return any(r["reason"] == "it names someone's address" for r in world.run("alice", ["reports",
                   world.saved["circle"]]).json)  # fmt: skip

    wait_for(listed, timeout=60, interval=0.2)
    (report,) = world.run("alice", ["reports", world.saved["circle"]]).json
    assert report["reporter"].startswith(world.saved["bob"]) and report["target"] == "post"
    assert report["target_id"].startswith(world.saved["alice_post"]) and report["readable"]
    refused = world.run("bob", ["reports", world.saved["circle"]])
    assert refused.code == EXIT_ERROR and "only organizers" in refused.err


def _hidden_for_bob(world: World, out: Any) -> None:
    """Bob's node folds the hide: the post's text is gone from his feed, his moderation log has it."""

    def hidden() -> bool:
        log = world.run("bob", ["moderation", world.saved["circle"]]).json
        return any(e["target"].startswith(world.saved["alice_post"]) for e in log)

    wait_for(hidden, timeout=60, interval=0.2)
    feed = world.run("bob", ["feed", world.saved["circle"]]).json["feed"]
    (item,) = [i for i in feed if i["id"].startswith(world.saved["alice_post"])]
    assert item["text"] == "" and item["hidden"] == "it gave out a home address"


def _installment_confirmed(world: World, out: Any) -> None:
    ledger = world.run("alice", ["ledger", world.saved["circle"]]).json
    assert [(i["contribution"][:8], i["month"]) for i in ledger["installments"]] == [
        (world.saved["contribution"], "2026-12")
    ]
    assert any(t["currency"] == "EUR" and t["received"] >= 2000 and t["monthly"] == 2000 for t in ledger["totals"])
    again = world.run("alice", ["receipt", world.saved["circle"], world.saved["contribution"], "--month", "2026-12"])
    assert again.code == EXIT_ERROR and "already confirmed" in again.err  # refused before signing


def _stopped(world: World, out: Any) -> None:
    def stopped() -> bool:
        ledger = world.run("alice", ["ledger", world.saved["circle"]]).json
        return any(r["last"] == "2027-01" for r in ledger["recurring"])

    wait_for(stopped, timeout=60, interval=0.2)
    later = world.run("alice", ["receipt", world.saved["circle"], world.saved["contribution"], "--month", "2027-02"])
    assert later.code == EXIT_ERROR and "stopped" in later.err


def _quay_changing(world: World, out: Any) -> None:
    """Quay changes in the background from here on (Bob's welcome by card, key changes,
    his removal), so it leaves the comparison of what refused commands changed."""
    world.saved["changing"] = (*world.saved.get("changing", ()), "Quay")


FUND_RULES = {"period_s": 60, "reveal_s": 60, "currency": "EUR", "categories": {"rent": 1000}, "cap": 1000}


def _fund_circle(world: World, out: Any) -> None:
    """Fundhouse: Alice's circle with allocation rules (minute-long periods) and 20 EUR in
    its fund. Its nodes close and draw periods by themselves, so it changes in the
    background and leaves the comparison of what refused commands changed."""
    world.ok("alice", "circle", "create", "-", stdin="Fundhouse\n")
    world.saved["changing"] = (*world.saved.get("changing", ()), "Fundhouse")
    rules = world.root / "rules.json"
    rules.write_text(json.dumps(FUND_RULES))
    proposal = world.ok("alice", "propose", "Fundhouse", "charter", "-", "--alloc-file", str(rules), stdin="Rules\n")
    world.ok("alice", "vote", "Fundhouse", proposal["id"][:8], "approve")
    gift = world.ok("alice", "contribute", "Fundhouse", "20.00", "EUR")
    world.ok("alice", "receipt", "Fundhouse", gift["id"][:8])


def _allocated_ask(world: World) -> list[str]:
    """The ask of `kith ask`'s case, once the nodes closed its period and drew it (a
    minute's period and a minute's reveal window)."""

    def allocated() -> bool:
        asks = world.run("alice", ["allocations", "Fundhouse"]).json["asks"]
        return any(a["outcome"] == "allocated" for a in asks)

    wait_for(allocated, timeout=240, interval=1)
    (ask,) = [a for a in world.run("alice", ["allocations", "Fundhouse"]).json["asks"] if a["outcome"] == "allocated"]
    return ["pay-ask", "Fundhouse", ask["id"][:8]]


def _new_relay_home(world: World) -> list[str]:
    return ["relay", "init"]


CASES: dict[tuple[str, ...], Case] = {
    # Identity (throwaway homes: "newcomer", "spare-relay").
    ("init",): Case("newcomer", lambda w: ["init", "--name", "-"], stdin="Ana\n"),
    ("whoami",): Case("newcomer", lambda w: ["whoami"]),
    ("passphrase",): Case("newcomer", lambda w: ["passphrase", "--new-passphrase-file", str(w.secret)]),
    ("relay", "init"): Case("spare-relay", _new_relay_home, after=_start_spare_relay),
    ("relay",): Case("spare-relay", lambda w: [], bad_classes=PREHANDLER, note="started by relay init's case"),
    ("relay", "run"): Case("relay", lambda w: [], bad_classes=PREHANDLER, note="the world's relay runs it"),
    ("node",): Case("alice", lambda w: [], bad_classes=PREHANDLER, note="the world's members run it"),
    # The node.
    ("status",): Case("alice", lambda w: ["status"]),
    ("connect",): Case("bob", lambda w: ["connect", w.relay.address]),
    ("sync",): Case("bob", lambda w: ["sync"]),
    # Circles.
    ("circles",): Case("alice", lambda w: ["circles"]),
    ("circle", "create"): Case(
        "alice",
        lambda w: ["circle", "create", "-", "--confirm-joins"],
        stdin="Harbour\n",
        after=lambda w, out: (_bob_asks_to_join_harbour(w, out), _fund_circle(w, out)),
    ),
    # Fundhouse's ask early and `pay-ask` last: its minute-long period and reveal window
    # then pass while the other cases run, instead of being waited out.
    ("allocations",): Case("alice", lambda w: ["allocations", "Fundhouse"]),
    ("ask",): Case("alice", lambda w: ["ask", "Fundhouse", "rent", "5.00", "--note"], stdin="March rent\n"),
    ("circle", "relay-token"): Case(
        "alice",
        lambda w: ["circle", "relay-token", s("circle")(w), "--label", "-"],
        stdin="river relay\n",
        after=save("token", lambda out: out["token"]),
    ),
    ("relay", "allow"): Case("relay", lambda w: ["relay", "allow", s("token")(w)]),
    ("relay", "add"): Case("alice", lambda w: ["relay", "add", s("circle")(w), w.relay.address]),
    ("relay", "list"): Case("alice", lambda w: ["relay", "list", s("circle")(w)]),
    ("relay", "remove"): Case("alice", lambda w: ["relay", "remove", s("circle")(w), w.relay.address]),
    # Joining.
    ("invite",): Case(
        "alice", lambda w: ["invite", s("circle")(w), "--uses", "2"], after=save("code", lambda o: o["code"])
    ),  # fmt: skip
    ("join",): Case("bob", lambda w: ["join", s("code")(w), "--wait", "60"], after=_joined),
    ("invites",): Case("alice", lambda w: ["invites", s("circle")(w)]),
    ("joins",): Case("bob", lambda w: ["joins"]),
    ("requests",): Case("alice", lambda w: ["requests", s("circle")(w)]),
    ("safety",): Case("alice", lambda w: ["safety", s("circle")(w), s("bob")(w)]),
    ("verify",): Case("alice", lambda w: ["verify", s("circle")(w), s("bob")(w), "--yes"]),
    # Support.
    ("post",): Case(
        "bob",
        lambda w: ["post", s("circle")(w), "--cw", "-", "--file", str(w.root / "message")],
        stdin="grief\n",
        after=save("post", lambda o: o["id"][:8]),
    ),  # fmt: skip
    ("edit",): Case("bob", lambda w: ["edit", s("circle")(w), s("post")(w)], stdin="edited text\n"),
    ("react",): Case("alice", lambda w: ["react", s("circle")(w), s("post")(w), "❤"]),
    ("delete",): Case("bob", lambda w: ["delete", s("circle")(w), s("post")(w)]),
    ("checkin",): Case("bob", lambda w: ["checkin", s("circle")(w), "struggling", "--note"], stdin="long week\n"),
    ("profile",): Case("bob", lambda w: ["profile", s("circle")(w), "--name", "-"], stdin="Bob\n"),
    ("feed",): Case("alice", lambda w: ["feed", s("circle")(w), "--limit", "10"], after=lambda w, o: _alice_posts(w)),
    # Moderation: Bob reports Alice's post to the organizers (Alice); Alice hides it.
    ("report",): Case(
        "bob",
        lambda w: ["report", s("circle")(w), "--post", s("alice_post")(w), "-"],
        stdin="it names someone's address\n",
        after=_report_arrives,
    ),  # fmt: skip
    ("reports",): Case("alice", lambda w: ["reports", s("circle")(w)]),
    ("hide",): Case(
        "alice",
        lambda w: ["hide", s("circle")(w), s("alice_post")(w), "-"],
        stdin="it gave out a home address\n",
        after=_hidden_for_bob,
    ),  # fmt: skip
    ("moderation",): Case("bob", lambda w: ["moderation", s("circle")(w)]),
    # Mutual aid.
    ("request",): Case(
        "alice",
        lambda w: ["request", s("circle")(w), "ride", "--amount", "1", "--unit", "trip"],
        stdin="to the clinic\n",
        after=save("request", lambda o: o["id"][:8]),
    ),  # fmt: skip
    ("pledge",): Case(
        "bob",
        lambda w: ["pledge", s("circle")(w), "ride", "--expires-days", "7"],
        stdin="I have a car\n",
        after=save("pledge", lambda o: o["id"][:8]),
    ),  # fmt: skip
    ("match",): Case("bob", lambda w: ["match", s("circle")(w), s("pledge")(w), s("request")(w)]),
    ("fulfil",): Case("alice", lambda w: ["fulfil", s("circle")(w), s("request")(w)], after=_another_pledge),
    ("withdraw",): Case("bob", lambda w: ["withdraw", s("circle")(w), s("spare_pledge")(w)]),
    ("board",): Case("alice", lambda w: ["board", s("circle")(w)]),
    # The fund and decisions.
    ("contribute",): Case(
        "bob",
        lambda w: ["contribute", s("circle")(w), "20.00", "EUR", "--monthly", "2026-12"],
        after=save("contribution", lambda o: o["id"][:8]),
    ),  # fmt: skip
    ("receipt",): Case(
        "alice",
        lambda w: ["receipt", s("circle")(w), s("contribution")(w), "--month", "2026-12"],
        after=_installment_confirmed,
    ),  # fmt: skip
    ("stop-monthly",): Case(
        "bob", lambda w: ["stop-monthly", s("circle")(w), s("contribution")(w), "--last", "2027-01"], after=_stopped
    ),  # fmt: skip
    ("propose",): Case(
        "alice",
        lambda w: [
            "propose",
            s("circle")(w),
            "spend",
            "-",
            "--amount",
            "5",
            "--currency",
            "EUR",
            "--recipient",
            "Bob",
            "--purpose",
            "bus fare",
        ],  # fmt: skip
        stdin="Fares\n",
        after=save("spend", lambda o: o["id"][:8]),
    ),
    ("vote",): Case("alice", lambda w: ["vote", s("circle")(w), s("spend")(w), "approve"], after=_approved_spend),
    ("proposals",): Case("alice", lambda w: ["proposals", s("circle")(w)]),
    ("disburse",): Case("alice", lambda w: ["disburse", s("circle")(w), s("spend")(w)]),
    ("ledger",): Case("alice", lambda w: ["ledger", s("circle")(w)]),
    # Events.
    ("event",): Case(
        "alice",
        lambda w: ["event", s("circle")(w), "-", "--starts", "2030-01-01T18:00"],
        stdin="Picnic\n",
        after=save("event", lambda o: o["id"][:8]),
    ),  # fmt: skip
    ("rsvp",): Case("bob", lambda w: ["rsvp", s("circle")(w), s("event")(w), "yes"]),
    ("events",): Case("bob", lambda w: ["events", s("circle")(w)]),
    # Members and roles.
    ("members",): Case("alice", lambda w: ["members", s("circle")(w)]),
    ("member", "grant"): Case("alice", lambda w: ["member", "grant", s("circle")(w), s("bob")(w), "treasurer"]),
    ("member", "revoke"): Case("alice", lambda w: ["member", "revoke", s("circle")(w), s("bob")(w), "treasurer"]),
    ("rejected",): Case("alice", lambda w: ["rejected", s("circle")(w)]),
    # Governance (OPS.md §6a): Alice reviews Bob (the reason sealed to her alone), Bob calls an
    # election of himself (Alice, acting later, ends it), and the log lists what took effect.
    ("review",): Case("alice", lambda w: ["review", s("circle")(w), s("bob")(w)], stdin="a reason\n"),
    ("elect",): Case("bob", lambda w: ["elect", s("circle")(w), s("bob")(w)]),
    ("modlog",): Case("alice", lambda w: ["modlog", s("circle")(w)]),
    # Harbour (created above, confirm-joins): Bob asks, Alice approves, adds, removes.
    ("approve",): Case("alice", lambda w: ["approve", "Harbour", s("bob")(w)], after=keys_delivered("Harbour")),
    ("member", "handover"): Case("alice", lambda w: ["member", "handover", "Harbour", s("bob")(w)]),
    ("member", "add"): Case(
        "alice", lambda w: ["member", "add", "Quay", s("bob_card")(w)], after=_quay_changing
    ),  # fmt: skip
    ("rotate",): Case("alice", lambda w: ["rotate", "Quay"]),
    ("member", "remove"): Case("alice", lambda w: ["member", "remove", "Quay", s("bob")(w)]),
    # Keys on a new device, then the destructive ones on throwaway homes.
    ("backup",): Case(
        "bob", lambda w: ["backup", str(w.root / "bob.kithbackup"), "--backup-passphrase-file", str(w.secret)]
    ),  # fmt: skip
    ("restore",): Case(
        "bob-again", lambda w: ["restore", str(w.root / "bob.kithbackup"), "--backup-passphrase-file", str(w.secret)]
    ),  # fmt: skip
    ("panic",): Case("bob-again", lambda w: ["panic", "--yes"]),
    ("stop",): Case("spare-relay", lambda w: ["stop"]),
    # Commands that draw or measure: what a script meets without a terminal, a quick list.
    ("bench",): Case("alice", lambda w: ["bench", "--list"], bad_classes=PREHANDLER),
    ("tui",): Case("alice", lambda w: ["tui"], bad_classes=PREHANDLER, note="no terminal: one line, exit 1"),
    ("demo",): Case("alice", lambda w: ["demo"], bad_classes=PREHANDLER, note="no terminal: one line, exit 1"),
    # Last, so Fundhouse's period (see `ask` above) has closed and drawn meanwhile.
    ("pay-ask",): Case("alice", _allocated_ask),
}
NO_TERMINAL = {("tui",), ("demo",)}
RUN_BY_THE_WORLD = {("node",), ("relay",), ("relay", "run")}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub.get_default("handler") is not None:
                    yield path + (name,), sub
                yield from _commands(sub, path + (name,))


COMMANDS = dict(_commands(build_parser()))


def test_every_command_has_a_contract_case_and_a_documented_json_shape() -> None:
    assert set(COMMANDS) == set(CASES), "a command without a contract case here (or a case for none)"
    documented = documented_shapes()
    assert set(documented) == set(COMMANDS) - NO_TERMINAL - RUN_BY_THE_WORLD, "docs/API.md's --json table"


def test_the_shape_grammar_refuses_what_the_doc_does_not_say() -> None:
    shape = parse_shape("{id, rejected: text|null, private?: text, items: [{a, ...}]}")
    assert shape_problems({"id": "x", "rejected": None, "items": [{"a": 1, "b": 2}]}, shape) == []
    assert shape_problems({"id": "x", "rejected": 3, "items": []}, shape) == [".rejected is 3, not text"]
    assert shape_problems({"id": "x", "rejected": None, "items": [], "extra": 1}, shape) == [
        ".extra is not in docs/API.md"
    ]
    assert shape_problems({"rejected": None, "items": [{}]}, shape) == [".id is missing", ".items[0].a is missing"]


# --- the bad input classes ----------------------------------------------------------------


def _slots(parser: argparse.ArgumentParser, args: list[str]) -> list[tuple[argparse.Action, int]]:
    """Which argument each value in ``args`` (after the command path) belongs to."""
    options = {o: a for a in parser._actions for o in a.option_strings}
    positionals = [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    slots, index = [], 0
    while index < len(args):
        token = args[index]
        if token in options:
            action = options[token]
            if action.nargs != 0:
                index += 1
                slots.append((action, index))
        elif positionals:
            action = positionals[0]
            slots.append((action, index))
            if action.nargs != "*":
                positionals.pop(0)
        index += 1
    return slots


def _is_text(action: argparse.Action) -> bool:
    return action.type is None and action.choices is None and action.dest not in GLOBAL


def bad_calls(path: tuple[str, ...], good: list[str], classes: tuple[str, ...]) -> dict[str, list[str | bytes]]:
    """One call per bad input class that applies to the command's arguments: the good
    call with one argument's value replaced (the first that takes text, or the first
    typed one for the wrong type)."""
    parser = COMMANDS[path]
    rest = good[len(path) :]
    slots = _slots(parser, rest)
    texts = [index for action, index in slots if _is_text(action)]
    calls: dict[str, list[str | bytes]] = {}

    def replaced(index: int, value: str | bytes) -> list[str | bytes]:
        return [*path, *rest[:index], value, *rest[index + 1 :]]

    values: dict[str, str | bytes] = {"not_utf8": b"caf\xe9", "control": "a\x1b[31mred", "empty": "", "huge": HUGE}
    for name, value in values.items():
        if name not in classes:
            continue
        if texts:
            calls[name] = replaced(texts[0], value)
        elif name in ("not_utf8", "control"):
            calls[name] = [*path, *rest, value]  # a command that takes no text: an extra argument
    if "wrong_type" in classes:
        typed = [(action, index) for action, index in slots if action.type in (int, float) or action.choices]
        if typed:
            calls["wrong_type"] = replaced(typed[0][1], "twelve")
        else:
            spare = [a for a in parser._actions if a.option_strings and a.type in (int, float)]
            if spare:
                calls["wrong_type"] = [*path, *rest, spare[0].option_strings[0], "twelve"]
    return calls


EXPECTED_CODE = {"not_utf8": {EXIT_USAGE}, "control": {EXIT_USAGE}, "wrong_type": {EXIT_USAGE},
                 "empty": {EXIT_ERROR, EXIT_USAGE}, "huge": {EXIT_ERROR, EXIT_USAGE}}  # fmt: skip


@pytest.mark.parametrize("path", list(CASES), ids=[" ".join(p) for p in CASES])
def test_command_contract(world: World, path: tuple[str, ...]) -> None:
    case = CASES[path]
    good = case.args(world)
    if path == ("post",):
        (world.root / "message").write_text("the hearing went badly\n")
    shapes = documented_shapes()

    # The bad inputs first: each refused in one line, and nothing done.
    calls = bad_calls(path, [*path, *good[len(path) :]] if good else list(path), case.bad_classes)
    before = world.settled()
    # A real process for bytes in argv that are not UTF-8 (only the interpreter's start
    # decodes them); the other classes run `main` in this process, against the same nodes.
    results = {name: world.run_here(case.who, args, case.stdin) for name, args in calls.items() if name != "not_utf8"}
    if "not_utf8" in calls:
        results["not_utf8"] = world.run(case.who, calls["not_utf8"], case.stdin)
    for name, result in results.items():
        # A label typed on the command line gets its one warning line (README), refused or not.
        warned = [line for line in result.err.splitlines() if line.startswith("kith: warning: ")]
        lines = [line for line in result.err.splitlines() if line not in warned]
        assert result.code in EXPECTED_CODE[name], (name, result.code, result.err[:500])
        assert len(lines) == 1 and lines[0].startswith("kith") and len(warned) <= 1, (name, result.err[:500])
        assert len(lines[0]) <= len("kith: ") + ERROR_LINE, (name, lines[0][:500])
        assert "\x1b" not in result.err and result.out == "", (name, result.out[:200])
    assert world.fingerprint() == before, "a refused command changed a circle"

    # The good call.
    if path in RUN_BY_THE_WORLD:
        return
    result = world.run(case.who, good, case.stdin, json_out=case.json_out)
    if path in NO_TERMINAL:
        assert result.code == EXIT_ERROR and len(result.err.splitlines()) == 1, result.err
        assert "needs a terminal" in result.err and result.out == ""
        return
    assert result.code == 0, result.err
    printed = json.loads(result.out)  # one JSON document, nothing else
    problems = shape_problems(printed, shapes[path])
    assert problems == [], f"kith {' '.join(path)} --json: {problems}; printed {result.out[:2000]}"
    case.after(world, printed)
