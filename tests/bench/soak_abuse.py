"""A malicious member: valid ops, abusive in volume or intent, and how the others fare.

Mallory is a real member of the circle; everything she does is signed and sealed
correctly. She builds a huge thread (a wide fan of replies and a deep chain), spams votes
on one proposal, tries disbursements she may not make (she is no treasurer; and the
treasurer tries one for a proposal nobody approved, and one beyond the balance) and posts
at the size limit and beyond it. Meanwhile the driver times control-API calls on an
honest member's node (``status`` and ``views``). At the end every node must hold the same
state, Mallory's votes must count once, and every forbidden spend must be refused by the
fold with its reason.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import Figures, register
from bench.cluster import wait_for
from bench.soak_load import Load
from bench.soak_world import World
from kith.identity.errors import KithError
from kith.sync.kinds.schema import MAX_POST_CHARS


def _timed(world: World, peer: Any, method: str, samples: list[float], stop: threading.Event, **params: Any) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        world.call(peer, method, **params)
        samples.append((time.perf_counter() - start) * 1000)
        stop.wait(0.05)


def run_abuse(*, fan: int = 1000, chain: int = 300, votes: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kith-abuse-") as tmp:
        world = World(Path(tmp), members=3, relays=1)
        try:
            world.start_all()
            Load(world, rate=1, churn_every_s=1e9).setup_circles(1, joined_share=1.0)
            circle = next(iter(world.circles))
            alice, bob, mallory = world.members  # alice organizes and keeps the fund
            call = world.call
            contribution = call(alice, "contribute", circle=circle, amount=10_000, currency="EUR")["id"]
            call(alice, "receipt", circle=circle, contribution=contribution)
            proposal = call(alice, "propose", circle=circle, kind="spend", title="Rent help", amount=5_000,
                            currency="EUR", recipient=bob.member_id, purpose="rent")["id"]  # fmt: skip
            # Mallory votes on it below: her node must have it first (else her first vote is refused
            # as a vote on an unknown proposal, not as a second vote).
            wait_for(lambda: any(p["id"] == proposal for p in call(mallory, "views", circle=circle)["proposals"]))
            status_ms: list[float] = []
            views_ms: list[float] = []
            stop = threading.Event()
            watchers = [
                threading.Thread(target=_timed, args=(world, bob, "status", status_ms, stop), daemon=True),
                threading.Thread(
                    target=_timed, args=(world, bob, "views", views_ms, stop), kwargs={"circle": circle}, daemon=True
                ),  # fmt: skip
            ]
            for watcher in watchers:
                watcher.start()
            started = time.time()
            root = call(mallory, "post", circle=circle, text="a thread that never ends")["id"]
            for i in range(fan):
                call(mallory, "post", circle=circle, text=f"reply {i}", reply_to=root)
            parent = root
            for i in range(chain):
                parent = call(mallory, "post", circle=circle, text=f"deeper {i}", reply_to=parent)["id"]
            refused_votes = 0
            for i in range(votes):
                # Her own node refuses every vote after the first (a vote is final); a
                # modified client's doubles are refused by the fold (tests/sync/test_votes.py).
                try:
                    call(mallory, "vote", circle=circle, proposal=proposal, choice=("approve", "object")[i % 2])
                except KithError:
                    refused_votes += 1

            def attempt(who: Any, method: str, **params: Any) -> str | None:
                """Why it was refused: by the author's own node before signing (the honest
                client checks first, sync.precheck), or by the fold once signed."""
                try:
                    return call(who, method, **params)["rejected"]
                except KithError as exc:
                    return f"refused before signing: {exc}"

            refused = {
                "mallory disburses": attempt(mallory, "disburse", circle=circle, proposal=proposal),
                "unapproved spend": attempt(alice, "disburse", circle=circle, proposal=proposal),
            }
            big = call(alice, "propose", circle=circle, kind="spend", title="Too much", amount=50_000,
                       currency="EUR", recipient=bob.member_id, purpose="more than the fund holds")["id"]  # fmt: skip
            for voter in (alice, bob, mallory):
                # A node votes only on a proposal it holds (it checks before signing).
                # Once two approvals decide it, the third is refused before signing.
                wait_for(lambda v=voter: any(p["id"] == big for p in call(v, "views", circle=circle)["proposals"]))
                attempt(voter, "vote", circle=circle, proposal=big, choice="approve")
            refused["beyond the balance"] = attempt(alice, "disburse", circle=circle, proposal=big)
            at_limit = call(mallory, "post", circle=circle, text="x" * MAX_POST_CHARS)["rejected"]
            try:
                call(mallory, "post", circle=circle, text="x" * (MAX_POST_CHARS + 1))
                oversized = "accepted"
            except KithError as exc:
                oversized = str(exc)
            abuse_s = time.time() - started

            def agreed() -> bool:
                return len({call(m, "state_hash", circle=circle)["state_hash"] for m in world.members}) == 1

            wait_for(agreed, timeout=180, interval=0.5)
            stop.set()
            for watcher in watchers:
                watcher.join(timeout=120)
            tally = next(p for p in call(bob, "views", circle=circle)["proposals"] if p["id"] == proposal)
            ops = call(bob, "state_hash", circle=circle)["ops"]
        finally:
            world.stop_all()
    return {
        "abuse_s": round(abuse_s, 1),
        "ops": ops,
        "status_ms": status_ms,
        "views_ms": views_ms,
        "refused": refused,
        "at_limit_rejected": at_limit,
        "oversized": oversized,
        "tally": tally,
        "refused_votes": refused_votes,
        "converged": True,
    }


def _p99(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1) if ordered else None


@register("abuse_status_p99_ms", "abuse_views_p99_ms")
def bench_abuse() -> Figures:
    result = run_abuse()
    return {"abuse_status_p99_ms": _p99(result["status_ms"]), "abuse_views_p99_ms": _p99(result["views_ms"])}
