"""Parameters declared as frozen dataclasses, and the checks and op bodies derived from them.

Theory of operation: a method's parameters are the fields of one dataclass. A field's
annotation is its type on the wire (`str`, `bool`, `int`, `float`, `list[str]`, `Id`,
`MemberRef`, `Any`; ``X | None`` when null is a value), its default makes it optional, and
its `Spec` (through `param`) carries what the type cannot say: a range, a list's length, a
choice, a text limit, help text, whether it is sealed content (docs/PROTOCOL.md, sealed
content) or steers the node instead of entering the op body. `parse` checks a request's
untrusted parameters against it (wrong type, out of range, missing, unknown key: one
`RpcError` -32602 with one sentence) and returns the typed instance; `op_body` turns an
action's instance into the op body the node signs. kith.p2pnet.actions declares every
control method with these.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from kith.p2pnet.control import INVALID_PARAMS, RpcError

Id = NewType("Id", bytes)
"""An op's id: 64 hex digits on the wire (or a unique prefix of at least 6, resolved first)."""
MemberRef = NewType("MemberRef", bytes)
"""A member's id: 64 hex digits, a unique prefix of at least 6, or their display name."""

REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True, slots=True)
class Spec:
    """What a parameter's type cannot say."""

    help: str = ""
    sealed: bool = False
    """Sealed content: the op body carries it under ``content``, encrypted to the circle."""
    wire: bool = True
    """False: steers the node (``private``), never enters the op body."""
    omit_null: bool = False
    """Left out of the body when null (docs/OPS.md §4, optional keys)."""
    choices: tuple[str, ...] = ()
    max_chars: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    items: tuple[int, int] | None = None
    """A list's least and most items."""
    range_error: str = ""
    """The sentence for a value out of range (today's wording, which tests and scripts read)."""
    note: str = ""
    """docs/API.md's words for it, when more than its choices or range."""


def param(
    help: str = "",  # noqa: A002 - the word argparse uses
    *,
    default: Any = REQUIRED,
    default_factory: Any = REQUIRED,
    **spec: Any,
) -> Any:
    """A dataclass field with its `Spec`; without a default the parameter is required."""
    metadata = {"kith": Spec(help, **spec)}
    if default_factory is not REQUIRED:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter as the schema declares it, resolved from a dataclass field."""

    name: str
    base: Any
    """str, bool, int, float, Id, MemberRef, list (of str) or Any."""
    nullable: bool
    required: bool
    default: Any
    spec: Spec

    @property
    def is_id(self) -> bool:
        return self.base is Id or self.base is MemberRef

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


@dataclass(frozen=True, slots=True)
class Method:
    """A control API method's name, parameter class, and (for actions) the op kind it signs."""

    name: str
    params: type
    kind: str | None = None
    summary: str = ""
    """docs/API.md's words after the parameters (actions whose rules are more than types)."""
    generic: bool = True
    """Signed by the node's one generic action handler (False: the method builds the body)."""
    circle: bool = True
    """Takes a ``circle`` (a circle id, prefix or name; checked by the node, not here)."""


def params_of(cls: type) -> tuple[Param, ...]:
    cached = _PARAMS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        base, nullable = _unwrap(hints[f.name])
        if f.default is not dataclasses.MISSING:
            required, default = False, f.default
        elif f.default_factory is not dataclasses.MISSING:
            required, default = False, f.default_factory
        else:
            required, default = True, None
        out.append(Param(f.name, base, nullable, required, default, f.metadata.get("kith", Spec())))
    _PARAMS[cls] = tuple(out)
    return _PARAMS[cls]


_PARAMS: dict[type, tuple[Param, ...]] = {}


def _unwrap(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"one type or one type | None, not {hint}")
        return _unwrap(args[0])[0], True
    if typing.get_origin(hint) is list:
        if typing.get_args(hint) != (str,):
            raise TypeError(f"only lists of text, not {hint}")
        return list, False
    if hint not in (str, bool, int, float, Id, MemberRef, Any):
        raise TypeError(f"no parameter type {hint}")
    return hint, False


# --- checking a request -----------------------------------------------------------------


def bad(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


def parse(cls: type, params: Mapping[str, Any], *, also: frozenset[str] = frozenset()) -> Any:
    """``params`` (untrusted JSON) as an instance of ``cls``, or `RpcError` -32602.

    ``also``: keys the caller handles itself (``circle``), accepted and not parsed."""
    declared = params_of(cls)
    known = {p.name for p in declared} | also
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no parameters"
        raise bad(f"unknown parameter {unknown[0]!r} (this method takes {takes})")
    values = {}
    for p in declared:
        value = params.get(p.name)
        if value is None:
            if p.required:
                raise bad(f"missing parameter {p.name!r}")
            values[p.name] = None if p.nullable and p.name in params else p.default_value()
            continue
        values[p.name] = check_value(p, value)
    return cls(**values)


def check_value(p: Param, value: Any) -> Any:
    """One present, non-null parameter: its type and range, as the node accepts it."""
    name, base = p.name, p.base
    if base is str:
        if not isinstance(value, str):
            raise bad(f"{name} must be text")
    elif base is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{name} must be a list of text")
        if p.spec.items is not None and not p.spec.items[0] <= len(value) <= p.spec.items[1]:
            raise bad(p.spec.range_error or f"{name} must hold {p.spec.items[0]} to {p.spec.items[1]} items")
    elif base is bool:
        if not isinstance(value, bool):
            raise bad(f"{name} must be true or false")
    elif base is int or base is float:
        _check_number(p, value)
    elif base is Id or base is MemberRef:
        value = _check_id(name, value)
    return value


def _check_number(p: Param, value: Any) -> None:
    spec = p.spec
    whole = p.base is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise bad(spec.range_error or f"{p.name} must be a whole number")
    low_ok = (
        spec.minimum is None or (value > spec.minimum if spec.exclusive_minimum else value >= spec.minimum)
    ) and not (isinstance(value, float) and math.isnan(value))
    if not low_ok or (spec.maximum is not None and not value <= spec.maximum):
        raise bad(spec.range_error or f"{p.name} is out of range")


def _check_id(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise bad(f"{name} must be a hex id")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise bad(f"{name} is not valid hex") from None
    if len(raw) != 32:
        raise bad(f"{name} must be 32 bytes (64 hex digits)")
    return raw


def id_params(cls: type) -> dict[str, Any]:
    """The parameters that name an op (`Id`) or a member (`MemberRef`): they take prefixes."""
    return {p.name: p.base for p in params_of(cls) if p.is_id}


def op_body(args: Any) -> dict[str, Any]:
    """An action's parsed parameters as the op body it signs: sealed fields under
    ``content``, node-only fields out, optional keys left out when null."""
    body: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for p in params_of(type(args)):
        if not p.spec.wire:
            continue
        value = getattr(args, p.name)
        if value is None and p.spec.omit_null:
            continue
        (content if p.spec.sealed else body)[p.name] = value
    if content:
        body["content"] = content
    return body


def describe(p: Param) -> str:
    """A parameter as docs/API.md's tables show it: ``name``, ``?`` when optional, then in
    parentheses its choices, range or note."""
    text = f"`{p.name}`" + ("" if p.required else "?")
    words = p.spec.note
    if not words and p.spec.choices:
        words = ", ".join(p.spec.choices)
    if not words and p.base is list:
        words = "list"
    if not p.required and p.default not in (None, False) and not callable(p.default):
        words = f"{words}; {_json(p.default)} when left out" if words else _json(p.default)
    return f"{text} ({words})" if words else text


def _json(value: Any) -> str:
    return "true" if value is True else str(value)
