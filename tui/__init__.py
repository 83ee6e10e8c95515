"""The `kith` command line, the Textual client and the demo: clients of a node's control API.

Public API:

- `kith.tui.cli`: `main` (the kith command line; `run` is the console entry point).
- `kith.tui.rpc`: `NodeClient` (blocking) and `NodeConnection` (asyncio), one JSON-RPC codec.
- `kith.tui.app`: `KithApp`, the terminal client.
- `kith.tui.demo`: `kith demo` (`kith.tui.demo_world` runs its nodes in a child process).
"""
