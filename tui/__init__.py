"""The Textual client and the `kith` command line: clients of a node's control API."""
