"""Provides ``pixmart similar``: the items most like a picture file or a stored item."""

from __future__ import annotations

import argparse
from pathlib import Path

from protocol.vision_client import iter_similar
from tui.commands.catalogue import card_line, plain
from tui.commands.context import CommandContext, CommandFailed, print_json, read_file


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``similar`` subcommand."""
    similar = commands.add_parser(
        "similar", help="items most like a picture file (or, with --item, a stored item)"
    )
    similar.add_argument("path", nargs="?", type=Path, help="an example picture (not stored)")
    similar.add_argument("--item", type=int, metavar="ID", help="compare with a stored item")
    similar.add_argument("--limit", type=int, default=24, help="how many (default 24; 0 = all)")
    similar.add_argument("--json", action="store_true", help="one JSON object per line")
    similar.set_defaults(func=similar_command)


async def similar_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Print similar items, best first, with their similarity."""
    if (args.path is None) == (args.item is None):
        raise CommandFailed("Give a picture file or --item ID (one of the two)")
    image = read_file(args.path)
    async with ctx.logged_in() as session:
        currency = session.currency
        async for card in iter_similar(
            session, image=image, item_id=args.item, max_items=args.limit or None
        ):
            if args.json:
                print_json(plain(card, currency))
            else:
                print(f"{round(100 * (card.score or 0)):>3}%  {card_line(card, currency)}")
    return 0
