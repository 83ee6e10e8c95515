"""Governance as people use it (docs/OPS.md §6a): real `kith` processes, real nodes.

Alice founds a circle, Bob and Carol join. Carol asks for a review of Bob: the reason is
sealed to Alice, the only organizer; Bob's and Carol's nodes cannot read it. Alice hands
the organizer role to Carol, and every member's `kith modlog` shows who did what.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.cluster import NodeProcess, make_home, passphrase_file, wait_for
from test_cli_membership import kith

pytestmark = pytest.mark.slow


def test_review_sealed_to_organizers_handover_and_the_moderation_log(tmp_path: Path) -> None:
    secret = passphrase_file(tmp_path)
    nodes = {name: NodeProcess(make_home(tmp_path, name), secret).start() for name in ("alice", "bob", "carol")}
    home = {name: node.home.root for name, node in nodes.items()}
    try:
        circle = kith(home["alice"], secret, "circle", "create", "Harbour")["id"]
        ids = {name: kith(home[name], secret, "whoami")["member_id"] for name in nodes}
        for name in ("bob", "carol"):
            code = kith(home["alice"], secret, "invite", "Harbour", "--uses", "1")["code"]
            kith(home[name], secret, "connect", nodes["alice"].address)
            assert kith(home[name], secret, "join", code, "--wait", "60")["status"] == "joined"
            kith(home[name], secret, "post", circle, text=f"{name} here\n")

        def members_seen_by(name: str) -> set[str]:
            return {m["id"] for m in kith(home[name], secret, "members", circle)}

        for name in nodes:
            wait_for(lambda name=name: members_seen_by(name) == set(ids.values()), timeout=60)

        # A review: the reason goes through stdin, never argv, and is sealed to Alice alone.
        review = kith(home["carol"], secret, "review", circle, ids["bob"][:8], text="he shared my address\n")
        assert review["rejected"] is None

        def review_of_bob(name: str) -> dict | None:
            found = [p for p in kith(home[name], secret, "proposals", circle) if p["id"] == review["id"]]
            return found[0] if found else None

        for name in nodes:
            wait_for(lambda name=name: review_of_bob(name) is not None, timeout=60)
        seen = review_of_bob("alice")
        assert seen is not None and seen["kind"] == "review" and seen["details"] == ids["bob"]
        assert ids["bob"] not in seen["electorate"]  # the member reviewed does not vote on it

        # Bob cannot elect himself while Alice, an organizer, is around to end it: refused here
        # for Alice (organizers grant the role), and accepted for Bob.
        refused = kith(home["alice"], secret, "elect", circle, ids["carol"][:8], check=False)
        assert refused.returncode == 1 and "organizer" in refused.stderr
        election = kith(home["bob"], secret, "elect", circle, ids["bob"][:8])
        assert election["rejected"] is None
        wait_for(lambda: any(p["id"] == election["id"] for p in kith(home["alice"], secret, "proposals", circle)))

        # Alice hands the role to Carol in one step (having seen Bob's election, this act of
        # hers also ends it: she is evidently there); her next organizer act is refused.
        assert kith(home["alice"], secret, "member", "handover", circle, ids["carol"][:8])["rejected"] is None
        wait_for(
            lambda: (
                {m["id"]: m["roles"] for m in kith(home["bob"], secret, "members", circle)}.get(ids["carol"])
                == ["organizer"]
            ),
            timeout=60,
        )
        again = kith(home["alice"], secret, "member", "grant", circle, ids["bob"][:8], "organizer", check=False)
        assert again.returncode == 1 and "organizer" in again.stderr

        # Every member reads the same log; only Alice (an organizer when it was sealed) reads
        # the review's reason once it is decided, and nobody else ever gets it.
        def kinds(name: str) -> list[str]:
            return [e["kind"] for e in kith(home[name], secret, "modlog", circle)["entries"]]

        for name in nodes:
            try:
                wait_for(lambda name=name: kinds(name) == ["handover", "election"], timeout=60)
            except AssertionError:
                raise AssertionError(f"{name}'s log: {kinds(name)}") from None
        log = kith(home["bob"], secret, "modlog", circle)
        handover, ended = log["entries"]
        assert (handover["target"], handover["actor"], handover["proposal"]) == (ids["carol"], ids["alice"], None)
        assert (ended["target"], ended["actor"], ended["proposal"], ended["outcome"]) == (
            ids["bob"],
            ids["alice"],
            election["id"],
            "rejected",
        )
        assert ended["op"] == handover["op"]
        text = kith(home["bob"], secret, "modlog", circle, check=False).stdout
        assert "he shared my address" not in text
    finally:
        for node in nodes.values():
            node.stop()
