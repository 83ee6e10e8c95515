"""The reconciliation benchmark measures what it claims, on a small topic (the real run uses 100,000 items)."""

from __future__ import annotations

import random

import pytest
from bench import reconcile


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


def test_one_difference_cpu_figures_are_per_side_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        reconcile, "ONE_DIFF_SIZES", {"reconcile_100k_one_diff_cpu_ms": 2000, "reconcile_1m_one_diff_cpu_ms": 4000}
    )
    figures = reconcile.bench_reconcile_one_diff_cpu()
    assert set(figures) == {"reconcile_100k_one_diff_cpu_ms", "reconcile_1m_one_diff_cpu_ms"}
    assert all(value >= 0 for value in figures.values())
    a, b, _envelopes = reconcile._scenario(5, "random", 1, 2000)
    first, second, messages, wire = reconcile.session_cpu(a, b, bytes(16))
    assert first > 0 and second > 0 and messages == 4  # Estimate, Sketch, SketchResult, the final Skip
    *_cpu, plain_messages, plain_wire = reconcile.session_cpu(a, b, bytes(16), estimates=False)
    assert plain_messages > messages and plain_wire > wire  # what the sketches save
