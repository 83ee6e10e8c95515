"""The command line's arguments come from the control API's schema (tui/commands/schema_args.py):
what each command sends is exactly a request the node's checks accept, and its choices are
the schema's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from kith.p2pnet.actions import METHODS, id_params, params_of, parse_method
from kith.tui.cli import build_parser, main

HEX = "ab" * 32


class RecordingClient:
    """`kith.tui.rpc.NodeClient`, recording each call and answering like a node that signed it."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, socket_path: Path, **options: Any) -> None:
        del socket_path, options

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        return {"id": HEX, "rejected": None}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(RecordingClient, "calls", calls)
    monkeypatch.setattr("kith.tui.rpc.NodeClient", RecordingClient)
    return calls


COMMANDS = [
    (["delete", "C", "abc123"], "delete", {"target": "abc123"}),
    (["react", "C", "abc123", "💜", "--off"], "react", {"target": "abc123", "emoji": "💜", "on": False}),
    (["match", "C", "p1p1p1", "r1r1r1"], "match", {"pledge": "p1p1p1", "request": "r1r1r1"}),
    (["fulfil", "C", "r1r1r1"], "fulfil", {"request": "r1r1r1"}),
    (["withdraw", "C", "i1i1i1"], "withdraw", {"item": "i1i1i1"}),
    (["rsvp", "C", "e1e1e1", "maybe"], "rsvp", {"event": "e1e1e1", "answer": "maybe"}),
    (["receipt", "C", "c1c1c1", "--month", "2026-12"], "receipt", {"contribution": "c1c1c1", "month": "2026-12"}),
    (["receipt", "C", "c1c1c1"], "receipt", {"contribution": "c1c1c1"}),
    (["member", "grant", "C", "Ash", "treasurer"], "role.grant", {"member": "Ash", "role": "treasurer"}),
    (["member", "revoke", "C", "Ash", "organizer"], "role.revoke", {"member": "Ash", "role": "organizer"}),
    (["member", "handover", "C", "Ash"], "role.handover", {"member": "Ash"}),
    (
        ["relay", "add", "C", "/dns4/r.example/tcp/4747/p2p/X"],
        "relay.add",
        {"address": "/dns4/r.example/tcp/4747/p2p/X"},
    ),
    (["hide", "C", "abc123", "spam"], "hide", {"target": "abc123", "reason": "spam"}),
    (["checkin", "C", "struggling", "--private"], "checkin", {"status": "struggling", "private": True}),
    (
        ["pledge", "C", "food", "--text-arg", "soup", "--amount", "3", "--unit", "meals"],
        "pledge",
        {"category": "food", "description": "soup", "amount": 3, "unit": "meals"},
    ),
    (["request", "C", "ride", "--text-arg", "to the clinic", "--private"], "request", {"category": "ride"}),
]


@pytest.mark.parametrize(("argv", "method", "expected"), COMMANDS)
def test_a_one_action_command_sends_a_request_the_schema_accepts(
    argv: list[str], method: str, expected: dict[str, Any], recorded: list[Any], tmp_path: Path
) -> None:
    assert main(["--home", str(tmp_path), *argv]) == 0
    assert len(recorded) == 1
    sent_method, params = recorded[0]
    assert sent_method == method
    assert params["circle"] == "C"
    assert expected.items() <= params.items()
    # The node's own check accepts it (ids stand in for the prefixes it would resolve).
    ids = {name: HEX for name in id_params(METHODS[method].params) if params.get(name) is not None}
    parse_method(method, {**params, **ids})


def _choices(parser: argparse.ArgumentParser, path: list[str], dest: str) -> list[str] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return _choices(action.choices[path[0]], path[1:], dest)
    return next(a.choices for a in parser._actions if a.dest == dest)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("path", "dest", "method"),
    [
        (["checkin"], "status", "checkin"),
        (["pledge"], "category", "pledge"),
        (["request"], "category", "request"),
        (["vote"], "choice", "vote"),
        (["rsvp"], "answer", "rsvp"),
        (["member", "grant"], "role", "role.grant"),
    ],
)
def test_choices_are_the_schemas(path: list[str], dest: str, method: str) -> None:
    spec = next(p.spec for p in params_of(METHODS[method].params) if p.name == dest)
    assert list(_choices(build_parser(), path, dest) or []) == list(spec.choices)


def test_a_choice_outside_the_schema_is_a_usage_error(recorded: list[Any], tmp_path: Path) -> None:
    assert main(["--home", str(tmp_path), "rsvp", "C", "e1e1e1", "perhaps"]) == 2
    assert recorded == []
