"""Provides the scripting subcommands of ``pixmart``, one module per domain."""
