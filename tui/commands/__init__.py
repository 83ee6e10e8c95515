"""Subcommands of the `kith` command line, one module per area."""
