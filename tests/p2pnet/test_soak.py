"""The soak, CI-sized: real processes, random load and faults, then the whole proof.

Six members and a relay for half a minute: posts, replies, reactions, aid, the fund,
votes, events, joins, removals, leaving, re-joining and rotations, while members and the
relay are killed with SIGKILL and restarted, the mesh is cut in two, the relay loses its
whole database, and two members run with their clocks hours off. Then every circle must
agree everywhere, no acknowledged op may be missing, every member must read everything it
should, and every store must pass an integrity check. (`kith bench soak --minutes N` runs
the full-size version: 20 members, 2 relays, a full disk too.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.soak import KEEP_ENV, SoakSettings, keep_homes, run_soak, soak_ok


@pytest.mark.slow
def test_a_small_cluster_under_faults_converges_and_loses_nothing() -> None:
    settings = SoakSettings(
        members=6,
        relays=1,
        seconds=30,
        rate=5,
        circles=2,
        churn_every_s=3,
        faults=("kill_member", "partition", "kill_relay", "relay_db_loss"),
        fault_gap_s=2,
        partition_s=8,
        down_s=(2.0, 4.0),
        skews_h={1: 3.0, 4: -5.0},
        converge_timeout_s=120,
        seed=11,
    )
    report = run_soak(settings)
    problems = soak_ok(report)
    # On failure, print every problem, the audit's details and the whole run log: a CI log
    # is all there is to go on.
    warnings = [f"{name}: {line}" for name, lines in report["node_warnings"].items() for line in lines]
    assert problems == [], "\n".join([*problems, *report["audit_details"][:40], *report["log"], *warnings])
    assert report["ops_sent"] >= 60
    assert report["delivery_ratio"] == 1.0 and report["lost"] == 0 and report["undecryptable"] == 0
    done = {fault["kind"] for fault in report["faults"]}
    assert {"kill_member", "partition", "kill_relay", "relay_db_loss"} <= done
    assert report["removals"] + report["rotations"] >= 2


def test_a_failed_soak_keeps_every_home_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "soak"
    (root / "m00" / "logs").mkdir(parents=True)
    (root / "m00" / "logs" / "node.log").write_text("the line that explains it\n")
    (root / "m00" / "control.sock").write_text("")
    said: list[str] = []
    assert keep_homes(root, {"problems": ["a join still pending"]}, said.append) is None  # not asked
    monkeypatch.setenv(KEEP_ENV, str(tmp_path / "kept"))
    kept = keep_homes(root, {"problems": ["a join still pending"]}, said.append)
    assert kept is not None and kept.parent == tmp_path / "kept"
    assert (kept / "m00" / "logs" / "node.log").read_text() == "the line that explains it\n"
    assert not (kept / "m00" / "control.sock").exists()
    assert json.loads((kept / "report.json").read_text())["problems"] == ["a join still pending"]
    assert said == [f"problems found: every home copied to {kept}"]
