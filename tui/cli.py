"""Provides the ``pixmart`` command: the TUI by default, scripting subcommands for bulk work."""

from __future__ import annotations

import argparse
import asyncio
import sys

from protocol.errors import PixmartError
from protocol.trust import TrustError
from tui.commands import accounts
from tui.commands.context import CommandContext, CommandFailed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pixmart", description="pixmart: an image shop in the terminal."
    )
    parser.add_argument("--server", help="wss://HOST:PORT (default: $PIXMART_SERVER or the last used)")
    parser.add_argument("--trust", metavar="FINGERPRINT", help="pin this server certificate fingerprint")
    parser.add_argument("--ca-file", metavar="PEM", help="verify the server against this CA instead")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    accounts.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pixmart``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        ctx = CommandContext.from_args(args)
        return asyncio.run(args.func(ctx, args))
    except KeyboardInterrupt:
        print("pixmart: interrupted", file=sys.stderr)
        return 130
    except (CommandFailed, TrustError) as exc:
        print(f"pixmart: {exc}", file=sys.stderr)
    except PixmartError as exc:
        print(f"pixmart: {exc.message}", file=sys.stderr)
    except (OSError, TimeoutError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or "no answer"
        print(f"pixmart: cannot reach the server: {reason}", file=sys.stderr)
    except ValueError as exc:
        print(f"pixmart: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
