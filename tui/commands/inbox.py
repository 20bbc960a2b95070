"""Provides ``pixmart inbox``: list the notices the shop kept for you, mark them read, clear."""

from __future__ import annotations

import argparse
import time

from protocol import inbox_client as inbox
from protocol.messages.inbox import Notice
from tui.commands.context import (
    CommandContext,
    CommandFailed,
    json_option,
    print_json,
    print_rows,
    wants_json,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``inbox`` subcommand and its actions."""
    with_json = json_option()
    notices = commands.add_parser(
        "inbox", parents=[with_json], help="list your notices (price drops, alerts, ...)"
    )
    notices.set_defaults(func=list_inbox)
    actions = notices.add_subparsers(dest="inbox_command", metavar="ACTION")
    read = actions.add_parser("read", parents=[with_json], help="mark notices read")
    read.add_argument("notice_ids", type=int, nargs="*", metavar="ID")
    read.add_argument("--all", action="store_true", help="mark every notice read")
    read.set_defaults(func=mark_read)
    actions.add_parser("clear", parents=[with_json], help="delete every notice").set_defaults(
        func=clear_inbox
    )


async def list_inbox(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List the notices, newest first, one per line (JSON objects with ``--json``)."""
    async with ctx.logged_in() as session:
        await print_rows(
            inbox.iter_inbox(session),
            as_json=wants_json(args),
            line=_line,
            empty="Your inbox is empty",
        )
    return 0


async def mark_read(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Mark the named notices (or ``--all``) read; print the unread count."""
    if bool(args.notice_ids) == bool(args.all):
        raise CommandFailed("Name the notices to mark read, or give --all")
    if any(notice_id < 1 for notice_id in args.notice_ids):
        raise CommandFailed("Notice ids are positive numbers (see 'pixmart inbox')")
    async with ctx.logged_in() as session:
        if args.all:
            unread = await inbox.mark_all_read(session)
        else:
            unread = await inbox.mark_read(session, args.notice_ids)
    _print_unread(unread, args)
    return 0


async def clear_inbox(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Delete every notice."""
    async with ctx.logged_in() as session:
        await inbox.clear_inbox(session)
    _print_unread(0, args)
    return 0


def _print_unread(unread: int, args: argparse.Namespace) -> None:
    if wants_json(args):
        print_json({"unread": unread})
    else:
        print(f"{unread} unread notice{'' if unread == 1 else 's'}")


def _line(notice: Notice) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(notice.created_at))
    mark = " " if notice.read else "*"
    item = f"#{notice.item_id}" if notice.item_id is not None else ""
    return f"{mark} {notice.id:>6}  {when}  {notice.kind.value:<14} {item:<8} {notice.text}"
