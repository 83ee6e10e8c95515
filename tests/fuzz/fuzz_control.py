"""The control API's line handler: `ControlServer._handle_line` on one raw line.

The server gets the real parameter checks of every method (`kith.p2pnet.actions.METHODS`
through `parse_method`), plus methods that echo, fail with a kith error, or are unknown;
no node is behind them. Each input runs in a fresh trio run (the handler uses trio's
timeouts).

Oracle: `_handle_line` never raises; its reply is None or JSON-RPC 2.0 that `json.dumps`
can send back.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from kith.identity.errors import Malformed, UsageError
from kith.p2pnet.actions import METHODS as SCHEMAS
from kith.p2pnet.actions import parse_method
from kith.p2pnet.api import to_json
from kith.p2pnet.control import ControlServer


def _action(name: str):  # type: ignore[no-untyped-def]
    async def handler(params: dict[str, Any]) -> Any:
        return to_json(parse_method(name, params))

    return handler


async def _echo(params: dict[str, Any]) -> Any:
    return {"echo": params}


async def _malformed(params: dict[str, Any]) -> Any:
    raise Malformed("bad input")


async def _usage(params: dict[str, Any]) -> Any:
    raise UsageError("not like that")


METHODS = {name: _action(name) for name in SCHEMAS}
METHODS.update({"echo": _echo, "malformed": _malformed, "usage": _usage})
SERVER = ControlServer(Path("/nonexistent/kith-fuzz.sock"), METHODS)


def _check_reply(reply: Any) -> None:
    if reply is None:
        return
    for item in reply if type(reply) is list else [reply]:
        if type(item) is not dict or item.get("jsonrpc") != "2.0" or ("result" in item) == ("error" in item):
            raise AssertionError(f"not a JSON-RPC reply: {item!r}"[:300])
    json.dumps(reply, separators=(",", ":"), ensure_ascii=False).encode()


def TestOneInput(data: bytes) -> None:
    client = SimpleNamespace(events=None, queue_send=None, dropped=0)
    reply = trio.run(SERVER._handle_line, client, data)
    _check_reply(reply)
