"""The node: libp2p host, gossip, sync streams, relay mode, its stores and its control API.

Public API (what `kith.tui` and tests use; everything else is internal):

- `kith.p2pnet.node`: `Node` (run one member's or relay's node in a trio nursery), built
  from a `kith.p2pnet.home.Home`, a `kith.p2pnet.keyfile.Keystore` and a
  `kith.p2pnet.config.NodeConfig`, and handed its control API
  (`kith.p2pnet.api.build_methods`).
- `kith.p2pnet.actions`: `METHODS`, every control method's parameters declared once
  (`kith.p2pnet.paramspec` says how); the CLI and the client read it.
- `kith.p2pnet.keyfile`: `Keystore` (the encrypted key file), `read_backup`, `write_backup`.
- `kith.p2pnet.store.EnvelopeStore` and `kith.p2pnet.statecache.StateCache`: the node's SQLite
  files.
- `kith.p2pnet.panic`: wiping a home.
"""
