"""Provides the ``pixmart`` command: the TUI by default, scripting subcommands for bulk work."""

from __future__ import annotations

import argparse
import asyncio
import sys

from protocol.errors import PixmartError
from protocol.trust import TrustError
from tui.commands import accounts, alerts, catalogue, commerce, favourites, inbox, vision
from tui.commands.context import CommandContext, CommandFailed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pixmart", description="pixmart: an image shop in the terminal."
    )
    parser.add_argument(
        "--server", help="wss://HOST:PORT (default: $PIXMART_SERVER or the last used)"
    )
    parser.add_argument(
        "--trust", metavar="FINGERPRINT", help="pin this server certificate fingerprint"
    )
    parser.add_argument(
        "--ca-file", metavar="PEM", help="verify the server against this CA instead"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="start a local demo shop and open it in the TUI")
    accounts.register(commands)
    catalogue.register(commands)
    commerce.register(commands)
    vision.register(commands)
    alerts.register(commands)
    favourites.register(commands)
    inbox.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pixmart``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from tui.launch import run_tui  # the full-screen client; Textual loads only here

        return run_tui(args)
    if args.command == "demo":
        from tui.demo import run_demo  # starts its own server subprocess and the TUI

        return run_demo(args)
    try:
        ctx = CommandContext.from_args(args)
        status: int = asyncio.run(args.func(ctx, args))
        return status
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
