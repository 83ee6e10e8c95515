"""`kith node` loads no client code: the terminal client's libraries cost memory a node never uses.

Issue 16 (a lean node): a running node's resident memory is mostly the modules it
imported. Textual (and what it pulls in) is the client's alone; the node's CLI path
imports it lazily, and these checks keep it that way on the real process, with every
import it made while starting, serving a call and stopping (``python -X importtime``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file

pytestmark = pytest.mark.slow

CLIENT_ONLY = ("textual", "kith.tui.app", "kith.tui.screens", "kith.tui.widgets", "segno")


def _imported(importtime_log: str) -> set[str]:
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


@pytest.mark.timeout(120)
def test_a_running_node_imports_nothing_of_the_client(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    node = NodeProcess(
        make_home(tmp_path, "lean"), passphrase_file(tmp_path), stderr=log, wrap=[sys.executable, "-X", "importtime"]
    )
    node.start(timeout=60)
    try:
        node.call("circle.create", name="Lean circle")
    finally:
        node.stop()
    imported = _imported(log.read_text())
    assert "kith.p2pnet.node" in imported  # the log is the node's
    leaked = sorted(name for name in imported if name.split(".")[0] in CLIENT_ONLY or name.startswith(CLIENT_ONLY))
    assert leaked == []
