"""What this node made that no peer has been offered in a reconciliation yet.

Gossip is fire-and-forget: an envelope we just made reaches the peers that follow its
topic at that moment, or nobody. Reconciliation with each peer later offers it again, so
nothing is lost while the node keeps running; but a node that stops right after making
something (an organizer who admits a newcomer and quits the client) would leave it on
this disk alone until it comes back, while the newcomer waits for their own admission.
So the node notes here, per topic, when it last made an envelope, and a finished
reconciliation session that shared the topic and began after that clears it: the peer
was offered everything the topic held. On a clean stop the node reconciles once more
while anything is left here (`Node._hand_on_unsent`).

Times are wall-clock seconds (`time.time`), as `syncproto.SyncStats.started` is.
"""

from __future__ import annotations

from collections.abc import Iterable


class Outbox:
    """Topics with envelopes we made that no finished session has offered to a peer."""

    def __init__(self) -> None:
        self._made: dict[bytes, float] = {}
        """topic -> when we last made an envelope on it."""

    def made(self, topic: bytes, at: float) -> None:
        """We made (stored and indexed) an envelope on ``topic`` at ``at``."""
        self._made[topic] = max(at, self._made.get(topic, at))

    def offered(self, topics: Iterable[bytes], session_started: float) -> None:
        """A session that began at ``session_started`` finished, sharing ``topics``: each
        peer side then held or was offered everything our index of those topics held."""
        for topic in topics:
            made = self._made.get(topic)
            if made is not None and made < session_started:
                del self._made[topic]

    def forget(self, topic: bytes) -> None:
        """We stopped serving ``topic`` (an invite that closed): nothing of it to hand on."""
        self._made.pop(topic, None)

    def pending(self) -> list[bytes]:
        return sorted(self._made)
