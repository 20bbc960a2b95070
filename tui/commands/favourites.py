"""Provides ``pixmart fav``: keep items as favourites, drop them, list them."""

from __future__ import annotations

import argparse

import msgspec

from protocol import favourites_client as fav
from protocol.messages.favourites import Favourite, FavouriteStatus
from protocol.money import format_price
from tui.commands.context import CommandContext, json_option, print_json, print_rows, wants_json


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fav`` subcommand and its actions."""
    with_json = json_option()
    favourites = commands.add_parser(
        "fav", parents=[with_json], help="keep items as favourites, or list them"
    )
    favourites.set_defaults(func=list_favourites)
    actions = favourites.add_subparsers(dest="fav_command", metavar="ACTION")
    add = actions.add_parser("add", parents=[with_json], help="keep an item as a favourite")
    add.add_argument("item_id", type=int, metavar="ITEM")
    add.set_defaults(func=add_favourite)
    remove = actions.add_parser("remove", parents=[with_json], help="drop a favourite")
    remove.add_argument("item_id", type=int, metavar="ITEM")
    remove.set_defaults(func=remove_favourite)
    listing = actions.add_parser("list", parents=[with_json], help="list your favourites")
    listing.set_defaults(func=list_favourites)


async def add_favourite(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Keep an item as a favourite."""
    async with ctx.logged_in() as session:
        state = await fav.add_favourite(session, args.item_id)
    if wants_json(args):
        print_json(state)
    else:
        print(f"Item {state.item_id} is a favourite ({_count(state.count)})")
    return 0


async def remove_favourite(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Drop a favourite (dropping one that is not there changes nothing)."""
    async with ctx.logged_in() as session:
        state = await fav.remove_favourite(session, args.item_id)
    if wants_json(args):
        print_json(state)
    else:
        print(f"Item {state.item_id} is not a favourite ({_count(state.count)})")
    return 0


async def list_favourites(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List the favourites, newest first, one per line (JSON objects with ``--json``)."""
    async with ctx.logged_in() as session:
        currency = session.currency
        await print_rows(
            fav.iter_favourites(session, with_pictures=False),
            as_json=wants_json(args),
            line=lambda favourite: _line(favourite, currency),
            as_value=_without_picture,
            empty="You keep no favourites yet: pixmart fav add ITEM",
        )
    return 0


def _without_picture(favourite: Favourite) -> Favourite:
    """The favourite without its thumbnail's bytes (a script wants the facts, not a picture)."""
    if favourite.card is None:
        return favourite
    return msgspec.structs.replace(
        favourite, card=msgspec.structs.replace(favourite.card, thumbnail=None)
    )


def _line(favourite: Favourite, currency: str) -> str:
    price = format_price(favourite.price_cents, currency)
    text = f"#{favourite.item_id:<6} {favourite.title[:40]:<40} {price:>14}"
    if favourite.status is FavouriteStatus.DELETED:
        return f"{text}  [deleted by the seller]"
    if favourite.status is FavouriteStatus.PRIVATE:
        return f"{text}  [no longer available]"
    notes = []
    if favourite.price_cents < favourite.added_price_cents:
        notes.append(f"was {format_price(favourite.added_price_cents, currency)}")
    if favourite.card is not None and favourite.card.stock == 0:
        notes.append("sold out")
    return f"{text}  [{'; '.join(notes)}]" if notes else text


def _count(count: int) -> str:
    return f"{count} favourite{'' if count == 1 else 's'} kept"
