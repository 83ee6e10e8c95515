"""The reconciliation benchmark measures what it claims, on a small topic (the real run uses 100,000 items)."""

from __future__ import annotations

import random

import pytest

from tui.bench import reconcile


@pytest.fixture(autouse=True)
def small_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "SHARED", 3000)
    monkeypatch.setattr(reconcile, "TRIALS", 2)


def test_random_and_clustered_figures() -> None:
    figures = reconcile.bench_reconcile_random()
    assert figures["reconcile_round_trips"] == 2
    assert 1.0 < figures["reconcile_bytes_ratio"] < 1.15
    assert figures["reconcile_ms"] >= 0
    clustered = reconcile.bench_reconcile_clustered()
    assert clustered["reconcile_round_trips_clustered"] == 2
    assert 1.0 < clustered["reconcile_bytes_ratio_clustered"] < 1.15


def test_run_session_counts_everything() -> None:
    a, b, envelopes = reconcile._scenario(5, "random", 10)
    trips, ratio, wire, _cpu = reconcile.run_session(a, b, envelopes, bytes(16))
    payload = sum(len(data) for _ts, data in envelopes.values())
    assert trips == 2
    # ratio = (wire + envelopes + their frames) / envelopes
    assert ratio == pytest.approx((wire + payload + reconcile.FRAME_BYTES * len(envelopes)) / payload)
    # A scenario with nothing missing: one round trip, no ratio.
    shared = reconcile._shared_items(random.Random(1), 500)
    trips, ratio, wire, _cpu = reconcile.run_session(
        reconcile.ItemIndex(shared), reconcile.ItemIndex(shared), {}, bytes(16)
    )
    assert (trips, ratio) == (1, 0.0) and wire < 260
