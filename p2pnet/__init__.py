"""The libp2p host, gossip, sync streams, relay mode, the Node and its control API."""
