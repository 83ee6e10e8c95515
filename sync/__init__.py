"""Ops, envelopes, the causal DAG, the circle-state fold and reconciliation: the pure core.

Sans-IO: plain functions and classes, no sockets, no trio, no files, no clock or randomness
of its own (lint-imports forbids them); the node passes time and randomness in.

Public API (what the layers above use; everything else is internal):

- `kith.sync.ops`: `Op`, `SignedOp` (a signed, hash-linked operation);
  `kith.sync.opkind.OpKind` (every op kind).
- `kith.sync.envelope`: `Envelope`, `seal`, `open_envelope`, `Kind` (what travels).
- `kith.sync.replica`: `CircleReplica` (a circle's DAG and folded state, fed envelopes);
  `kith.sync.state`: `CircleState`, `fold_circle_state` (the deterministic fold).
- `kith.sync.views`: what the client shows (`feed` and the other views), built from a state.
- `kith.sync.precheck`: the honest client's checks before it signs.
- `kith.sync.reconcile`: `ReconcileSession` (set reconciliation, messages in and out).
- `kith.sync.lifecycle`: `MembershipLifecycle` (who to admit, when to rotate: decisions).
- `kith.sync.invites`: `InviteCode` and the join/welcome envelopes.
- `kith.sync.cache`: `OpCache`, the interface the node's state cache implements.
"""
