"""Provides ``pixmart alerts``: save searches that alert, list them, remove one.

``pixmart alerts add`` takes the filters of ``pixmart browse`` (tags, words, price range, in
stock) and, with ``--like PICTURE``, an example picture: the server keeps its embedding and tells
you (an inbox notice, see ``pixmart inbox``) of every new or changed item that matches.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from protocol.alerts_client import remove_saved_search, save_search, saved_searches
from protocol.listing_fields import parse_tags
from protocol.messages.alerts import SavedSearch
from protocol.messages.catalogue import ListingFilters
from protocol.money import parse_price
from protocol.saved_searches import describe_saved
from tui.commands.context import CommandContext, CommandFailed, print_json, read_file


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``alerts`` subcommand and its actions."""
    alerts = commands.add_parser("alerts", help="saved searches that tell you of new matches")
    actions = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="save a search that alerts")
    add.add_argument("--tags", default="", help="items carrying all these tags (a,b)")
    add.add_argument("--query", default="", help="words in title, description or tags")
    add.add_argument("--min-price", help="lowest price, e.g. 5")
    add.add_argument("--max-price", help="highest price, e.g. 20.00")
    add.add_argument("--in-stock", action="store_true", help="only items with stock left")
    add.add_argument("--like", type=Path, metavar="PICTURE", help="items that look like it")
    add.add_argument(
        "--min-similarity",
        type=int,
        metavar="PCT",
        help="how alike, in percent, with --like (the server's default: 70)",
    )
    add.add_argument("--json", action="store_true", help="print the saved search as JSON")
    add.set_defaults(func=add_command)

    listing = actions.add_parser("list", help="your saved searches")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=list_command)

    remove = actions.add_parser("remove", help="remove a saved search")
    remove.add_argument("search_id", type=int, metavar="ID")
    remove.set_defaults(func=remove_command)


async def add_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Save the search the options describe."""
    if args.min_similarity is not None:
        if args.like is None:
            raise CommandFailed("--min-similarity goes with --like PICTURE")
        if not 1 <= args.min_similarity <= 100:
            raise CommandFailed("--min-similarity is a percentage from 1 to 100")
    image = read_file(args.like)
    async with ctx.logged_in() as session:
        currency = session.currency
        filters = ListingFilters(
            tags=parse_tags(args.tags),
            text=args.query,
            min_price_cents=parse_price(args.min_price, currency) if args.min_price else None,
            max_price_cents=parse_price(args.max_price, currency) if args.max_price else None,
            in_stock=args.in_stock,
        )
        saved = await save_search(
            session,
            filters,
            like_image=image,
            like_label=args.like.name if args.like is not None else "",
            min_similarity=args.min_similarity,
        )
        if args.json:
            print_json(plain(saved))
        else:
            print(f"Saved search #{saved.id}: {describe_saved(saved, currency)}")
    return 0


async def list_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Print the saved searches, oldest first."""
    async with ctx.logged_in() as session:
        found = await saved_searches(session)
        if args.json:
            for saved in found.searches:
                print_json(plain(saved))
        elif not found.searches:
            print("You have no saved searches")
        else:
            for saved in found.searches:
                print(f"#{saved.id:<6} {describe_saved(saved, session.currency)}")
    return 0


async def remove_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Remove one saved search."""
    async with ctx.logged_in() as session:
        await remove_saved_search(session, args.search_id)
        print(f"Removed saved search #{args.search_id}")
    return 0


def plain(saved: SavedSearch) -> dict[str, Any]:
    """A saved search as plain JSON values (filters spelled out, nothing left out)."""
    filters = saved.filters
    return {
        "id": saved.id,
        "text": filters.text,
        "tags": list(filters.tags),
        "min_price_cents": filters.min_price_cents,
        "max_price_cents": filters.max_price_cents,
        "in_stock": filters.in_stock,
        "owner_id": filters.owner_id,
        "like": saved.like_label,
        "min_similarity": saved.min_similarity,
        "created_at": saved.created_at,
    }
