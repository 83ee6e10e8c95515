"""The soak's convergence check waits for the mesh to settle, not for a moment of agreement.

CI once failed the soak's re-fold audit: every live node agreed at one look, then key
duties taken in turns (a due rotation) added ops before the nodes stopped, so their
stores no longer matched the hashes of that look. `converge` must only report success
after every circle has looked the same for `QUIET_S`. The looks are scripted here on a
fake clock; the real soak runs in tests/p2pnet/test_soak.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from bench import soak_check
from bench.soak_check import QUIET_S, Convergence


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _Load:
    def check_joins(self) -> None:
        pass


class _World:
    def everyone(self) -> list[Any]:
        return []


def _seen(state: str, *, problems: tuple[str, ...] = ()) -> Convergence:
    seen = Convergence(False, 0.0, problems=list(problems))
    seen.hashes = {"Night owls": {"m00": state, "m02": state}}
    seen.envelopes = {"Night owls": {"m00": 90, "m02": 90}}
    return seen


def _script(monkeypatch: pytest.MonkeyPatch, looks: Any) -> _Clock:
    clock = _Clock()

    def look(world: Any) -> Convergence:
        return next(looks)(clock.now)

    monkeypatch.setattr(soak_check, "look", look)
    return clock


def test_agreement_that_changes_is_not_convergence(monkeypatch: pytest.MonkeyPatch) -> None:
    start = 1000.0

    def looks() -> Any:
        while True:
            # Agreement on state "a"; 6 s later a rotation lands everywhere: state "b".
            yield lambda now: _seen("a" if now < start + 6 else "b")

    clock = _script(monkeypatch, looks())
    result = soak_check.converge(_World(), _Load(), timeout=120, clock=clock.time, sleep=clock.sleep)  # type: ignore[arg-type]
    assert result.converged and result.problems == []
    assert result.hashes["Night owls"]["m00"] == "b"
    assert clock.now - (start + 6) >= QUIET_S


def test_disagreement_restarts_the_quiet_window(monkeypatch: pytest.MonkeyPatch) -> None:
    start = 1000.0

    def state(now: float) -> Convergence:
        if start + 5 <= now < start + 7:
            return _seen("a", problems=("Night owls: m02 has state c",))
        return _seen("a")

    def looks() -> Any:
        while True:
            yield state

    clock = _script(monkeypatch, looks())
    result = soak_check.converge(_World(), _Load(), timeout=120, clock=clock.time, sleep=clock.sleep)  # type: ignore[arg-type]
    assert result.converged
    assert clock.now - (start + 7) >= QUIET_S


def test_a_mesh_that_never_settles_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def looks() -> Any:
        while True:
            yield lambda now: _seen(str(int(now) // 5))  # a new state every 5 s

    clock = _script(monkeypatch, looks())
    result = soak_check.converge(_World(), _Load(), timeout=60, clock=clock.time, sleep=clock.sleep)  # type: ignore[arg-type]
    assert not result.converged
    assert result.problems == ["the circles kept changing without load for 60 s"]
