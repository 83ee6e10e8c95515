"""The control API's one schema (kith.p2pnet.actions): checks, op bodies, and docs/API.md."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kith.p2pnet import actions
from kith.p2pnet.actions import ACTIONS, METHODS, Id, MemberRef, actions_table, op_body, params_of, parse_method
from kith.p2pnet.api import ControlMethods
from kith.p2pnet.control import INVALID_PARAMS, RpcError
from kith.sync.kinds import schema

ROOT = Path(__file__).resolve().parents[2]
ID = "ab" * 32


def _refused(method: str, params: dict[str, Any]) -> str:
    with pytest.raises(RpcError) as caught:
        parse_method(method, params)
    assert caught.value.code == INVALID_PARAMS
    return str(caught.value)


def test_docs_api_actions_table_is_the_schema() -> None:
    doc = (ROOT / "docs" / "API.md").read_text()
    assert actions_table() in doc, "docs/API.md's table of actions: paste kith.p2pnet.actions.actions_table()"


def test_every_method_has_one_handler_and_one_schema() -> None:
    handlers = ControlMethods(SimpleNamespace()).table()  # type: ignore[arg-type]
    assert handlers.keys() == METHODS.keys()
    assert set(ACTIONS) <= set(METHODS)
    for method in METHODS.values():
        params_of(method.params)  # every annotation is a parameter type the checks know


def test_a_post_becomes_the_body_the_fold_expects() -> None:
    args = parse_method("post", {"circle": "x", "text": "hi", "reply_to": ID})
    assert op_body(args) == {
        "content": {"text": "hi", "content_warning": None},
        "reply_to": bytes.fromhex(ID),
        "urgent": False,
    }


def test_node_only_and_optional_keys_stay_out_of_the_body() -> None:
    request = parse_method("request", {"category": "food", "description": "soup", "private": True})
    assert request.private is True
    assert "private" not in op_body(request) and "private" not in op_body(request)["content"]
    one_off = op_body(parse_method("contribute", {"amount": 500, "currency": "EUR"}))
    assert one_off == {"amount": 500, "currency": "EUR", "note": None}  # no "monthly": the op it always was
    monthly = op_body(parse_method("contribute", {"amount": 500, "currency": "EUR", "monthly": "2026-12"}))
    assert monthly["monthly"] == "2026-12"
    assert op_body(parse_method("react", {"target": ID, "emoji": "💜"}))["on"] is True
    assert op_body(parse_method("react", {"target": ID, "emoji": "💜", "on": None}))["on"] is True
    assert op_body(parse_method("profile", {"display_name": "Ash"}))["skills"] == []


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("post", {}, "missing parameter 'text'"),
        ("post", {"text": None}, "missing parameter 'text'"),
        ("post", {"text": 5}, "text must be text"),
        ("post", {"text": "hi", "urgent": "yes"}, "urgent must be true or false"),
        ("post", {"text": "hi", "reply_to": 7}, "reply_to must be a hex id"),
        ("post", {"text": "hi", "reply_to": "zz" * 32}, "reply_to is not valid hex"),
        ("post", {"text": "hi", "reply_to": "ab"}, "reply_to must be 32 bytes (64 hex digits)"),
        ("post", {"text": "hi", "colour": "red"}, "unknown parameter 'colour'"),
        ("pledge", {"category": "food", "description": "x", "private": True}, "unknown parameter 'private'"),
        ("status", {"circle": "x"}, "unknown parameter 'circle'"),
        ("profile", {"display_name": "A", "skills": ["a", 1]}, "skills must be a list of text"),
        ("pledge", {"category": "food", "description": "x", "amount": 1.5}, "amount must be a whole number"),
        ("pledge", {"category": "food", "description": "x", "amount": True}, "amount must be a whole number"),
        ("block", {"peer": "p", "seconds": 0}, "seconds must be a number of seconds, more than 0 and at most 86400"),
        ("block", {"peer": "p", "seconds": 86401}, "seconds must be a number of seconds"),
        ("block", {"peer": "p", "seconds": math.nan}, "seconds must be a number of seconds"),
        ("block", {"peer": "p", "seconds": math.inf}, "seconds must be a number of seconds"),
        ("block", {"peer": "p", "seconds": "10"}, "seconds must be a number of seconds"),
        ("invite.create", {"uses": 0}, "uses must be 1..1000"),
        ("invite.create", {"uses": 1001}, "uses must be 1..1000"),
        ("invite.create", {"expires_s": 0}, "expires_s must be 1 s to 366 days, or null for no expiry"),
        ("invite.create", {"expires_s": actions.MAX_INVITE_S + 1}, "expires_s must be 1 s to 366 days"),
        ("invite.create", {"expires_s": math.nan}, "expires_s must be 1 s to 366 days"),
        ("views", {"feed_limit": 0}, "feed_limit must be 1..10000"),
        ("views", {"feed_limit": 10_001}, "feed_limit must be 1..10000"),
        ("post_many", {"texts": []}, "texts must hold 1 to 1000 messages"),
        ("post_many", {"texts": ["x"] * 1001}, "texts must hold 1 to 1000 messages"),
        ("propose", {"kind": "general", "title": "t", "closes_s": 1.5}, "closes_s must be a whole number of seconds"),
    ],
)
def test_bad_parameters_are_one_clear_error(method: str, params: dict[str, Any], message: str) -> None:
    assert message in _refused(method, params)


def test_ranges_accept_their_bounds_and_null_where_null_means_something() -> None:
    assert parse_method("block", {"peer": "p", "seconds": 86400}).seconds == 86400
    assert parse_method("block", {"peer": "p", "seconds": 0.5}).seconds == 0.5
    assert parse_method("block", {"peer": "p"}).seconds == 600
    assert parse_method("invite.create", {}).expires_s == 7 * 86400
    assert parse_method("invite.create", {"expires_s": None}).expires_s is None  # never expires
    assert parse_method("invite.create", {"uses": 1000}).uses == 1000
    assert parse_method("views", {"feed_limit": 10_000}).feed_limit == 10_000
    assert len(parse_method("post_many", {"texts": ["x"] * 1000}).texts) == 1000


def test_text_limits_and_choices_are_the_folds_own() -> None:
    """The schema declares the limits the fold enforces (forms and the CLI read them here)."""
    post = {p.name: p for p in params_of(actions.Post)}
    assert post["text"].spec.max_chars == schema.MAX_POST_CHARS
    assert post["text"].spec.sealed and post["content_warning"].spec.sealed
    checkin = {p.name: p for p in params_of(actions.Checkin)}
    assert checkin["status"].spec.choices == ("ok", "struggling", "need-help")
    assert not checkin["private"].spec.wire
    ids = {name: p.base for name, m in METHODS.items() for p in params_of(m.params) if p.is_id}
    assert ids["delete"] is Id and ids["member.remove"] is MemberRef


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(sorted(METHODS)),
    params=st.dictionaries(st.sampled_from(["text", "target", "amount", "seconds", "texts", "member", "x"]), JSON),
    data=st.data(),
)
def test_any_json_is_parsed_or_refused_with_one_error(method: str, params: dict[str, Any], data: Any) -> None:
    names = [p.name for p in params_of(METHODS[method].params)]
    if names:
        params |= data.draw(st.dictionaries(st.sampled_from(names), JSON, max_size=len(names)))
    try:
        parsed = parse_method(method, params)
    except RpcError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code == INVALID_PARAMS and "\n" not in str(refused)
        return
    for p in params_of(METHODS[method].params):
        value = getattr(parsed, p.name)
        assert value is not None or p.nullable or not p.required
    json.dumps(op_body(parsed), default=bytes.hex)  # the body holds only JSON/CBOR-ready values


def test_docs_api_names_every_methods_parameters() -> None:
    """The tables besides the actions' (their results are prose) name each method and every
    parameter the schema declares for it, and no method the schema lacks."""
    doc = (ROOT / "docs" / "API.md").read_text()
    methods_section = doc[doc.index("## Methods") : doc.index("## Views")]
    rows: dict[str, str] = {}
    for row in methods_section.splitlines():
        cells = row.split("|")
        if row.startswith("| `") and len(cells) >= 4:
            for name in re.findall(r"`([a-z_.]+)`", cells[1]):
                rows.setdefault(name, row)
    assert set(rows) - {"subscribe"} == set(METHODS), "docs/API.md's methods and kith.p2pnet.actions.METHODS"
    for name, method in METHODS.items():
        for p in params_of(method.params):
            assert f"`{p.name}`" in rows[name], f"docs/API.md: {name} does not name its parameter {p.name}"
