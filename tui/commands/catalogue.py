"""Provides ``pixmart upload``, ``browse``, ``item``, ``edit``, ``delete`` and ``tags``.

Uploads run several files at once, show a progress bar on stderr when it is a terminal (with
pictures per second and the time left; ``pixmart-server import`` shows the same bar), and
resume: the server keys partial uploads by the file's SHA-256, so running the same command
again after an interruption continues each file where the server's copy ends. ``--json``
prints one JSON object per line with the protocol's field names and no picture bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec

from protocol.catalogue_client import (
    delete_items,
    download_original,
    edit_item,
    get_item,
    iter_items,
    list_tags,
    upload_file,
)
from protocol.errors import PixmartError
from protocol.listing_fields import UNTITLED, parse_tags, title_from_filename
from protocol.messages.catalogue import (
    ItemCard,
    ItemDetail,
    ItemMetadata,
    ListingFilters,
    SortOrder,
)
from protocol.money import format_price, parse_price
from tui.commands.context import CommandContext, CommandFailed, print_json
from tui.data.reasons import looks_like_label

#: File name endings ``pixmart upload`` picks up in folders.
PICTURE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp"})
DEFAULT_JOBS: Final = 4
_SORTS: Final = {
    "newest": SortOrder.NEWEST,
    "price-up": SortOrder.PRICE_UP,
    "price-down": SortOrder.PRICE_DOWN,
}
#: Picture bytes never go into JSON output.
_BYTES_FIELDS: Final = frozenset({"thumbnail", "preview"})


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the catalogue subcommands."""
    upload = commands.add_parser("upload", help="upload pictures (files or folders) as items")
    upload.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    upload.add_argument("--price", default="0", help="price, e.g. 12.50 (default 0)")
    upload.add_argument("--stock", type=int, default=1, help="units for sale (default 1)")
    upload.add_argument("--tags", default="", help="comma-separated tags, e.g. sky,night")
    upload.add_argument("--title", help="title of every item (default: Untitled)")
    upload.add_argument(
        "--title-from-filename", action="store_true", help="title each item after its file name"
    )
    upload.add_argument("--description", default="", help="description of every item")
    upload.add_argument("--private", action="store_true", help="visible to you only")
    upload.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, help=f"uploads in flight (default {DEFAULT_JOBS})"
    )
    upload.add_argument("--json", action="store_true", help="one JSON line per file")
    upload.set_defaults(func=upload_command)

    browse = commands.add_parser("browse", help="list and search items")
    browse.add_argument("--tags", default="", help="items carrying all these tags (a,b)")
    browse.add_argument("--query", default="", help="words in title, description or tags")
    browse.add_argument("--mine", action="store_true", help="only your items")
    browse.add_argument("--min-price", help="lowest price, e.g. 5")
    browse.add_argument("--max-price", help="highest price, e.g. 20.00")
    browse.add_argument("--in-stock", action="store_true", help="only items with stock left")
    browse.add_argument("--sort", choices=sorted(_SORTS), default="newest")
    browse.add_argument("--limit", type=int, default=24, help="items to show (0: all; default 24)")
    browse.add_argument("--json", action="store_true", help="one JSON object per line")
    browse.set_defaults(func=browse_command)

    item = commands.add_parser("item", help="show one item")
    item.add_argument("item_id", type=int, metavar="ID")
    item.add_argument("--json", action="store_true", help="print JSON")
    item.add_argument("--download", type=Path, metavar="FILE", help="save the original picture")
    item.set_defaults(func=item_command)

    edit = commands.add_parser("edit", help="change an item you sell")
    edit.add_argument("item_id", type=int, metavar="ID")
    edit.add_argument("--title")
    edit.add_argument("--description")
    edit.add_argument("--price", help="e.g. 12.50")
    edit.add_argument("--stock", type=int)
    edit.add_argument("--tags", help="replace the tags (a,b; empty to clear)")
    visibility = edit.add_mutually_exclusive_group()
    visibility.add_argument("--public", dest="public", action="store_const", const=True)
    visibility.add_argument("--private", dest="public", action="store_const", const=False)
    edit.add_argument("--json", action="store_true", help="print the item as JSON")
    edit.set_defaults(func=edit_command)

    delete = commands.add_parser("delete", help="delete items you sell")
    delete.add_argument("item_ids", type=int, nargs="+", metavar="ID")
    delete.set_defaults(func=delete_command)

    tags = commands.add_parser("tags", help="list tags with the number of items carrying each")
    tags.add_argument("prefix", nargs="?", default="")
    tags.add_argument("--limit", type=int, default=100)
    tags.add_argument("--json", action="store_true", help="one JSON object per line")
    tags.set_defaults(func=tags_command)


# -- helpers -------------------------------------------------------------------------------


def plain(value: ItemCard | ItemDetail, currency: str) -> dict[str, Any]:
    """A card or detail as JSON-ready builtins, without picture bytes."""
    data = msgspec.to_builtins(value)
    assert isinstance(data, dict)
    for name in _BYTES_FIELDS:
        data.pop(name, None)
    for reason in ("score", "looks_like"):  # only where the listing gives one
        if data.get(reason) is None:
            data.pop(reason, None)
    data["currency"] = currency
    return data


def card_line(card: ItemCard, currency: str) -> str:
    """One line of ``browse`` output."""
    visibility = "" if card.public else " [private]"
    tags = f"  #{' #'.join(card.tags)}" if card.tags else ""
    seen = f"  [{looks_like_label(card.looks_like)}]" if card.looks_like else ""
    return (
        f"{card.id:>7}  {format_price(card.price_cents, currency):>14}  stock {card.stock:<5}"
        f" {card.title}{visibility}  ({card.owner_name}){tags}{seen}"
    )


# -- upload --------------------------------------------------------------------------------


@dataclass
class UploadReport:
    """What happened to each file of a bulk upload."""

    uploaded: list[tuple[Path, ItemCard, list[str]]] = field(default_factory=list)
    duplicates: list[tuple[Path, ItemCard]] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line of counts."""
        return (
            f"uploaded {len(self.uploaded)}, duplicates {len(self.duplicates)}, "
            f"rejected {len(self.rejected)}"
        )


def collect_pictures(paths: Iterable[Path], report: UploadReport) -> list[Path]:
    """The picture files named or contained (recursively) in ``paths``, each once.

    Missing paths and named files of other types go into ``report.rejected``; other files in
    folders are skipped silently.
    """
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.suffix.lower() in PICTURE_SUFFIXES and child.is_file():
                    found.setdefault(child.resolve())
        elif path.is_file():
            if path.suffix.lower() in PICTURE_SUFFIXES:
                found.setdefault(path.resolve())
            else:
                report.rejected.append((path, "not a .jpg, .jpeg, .png or .webp file"))
        else:
            report.rejected.append((path, "no such file or folder"))
    return list(found)


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not one.

    It shows the bytes the server holds, the files finished, pictures per second and the time
    left. Both rates are averages since the start: a run's files take turns at being uploaded
    and processed, so a recent window would swing with each file's size. The time left comes
    from pictures per second once a file is finished, from the byte rate before that.

    Args:
        stream: Where the bar is drawn (stderr).
        files: How many files the run has.
        total_bytes: Their size in all.
        clock: Seconds on a monotonic clock (for tests).
    """

    def __init__(
        self,
        stream: TextIO,
        files: int,
        total_bytes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._files = files
        self._total = max(1, total_bytes)
        self._done_files = 0
        self._bytes: dict[Path, int] = {}
        self._clock = clock
        self._started = clock()
        self._drawn_at = -1.0

    def update(self, path: Path, done: int) -> None:
        """Record that the server holds ``done`` bytes of ``path``."""
        self._bytes[path] = done
        self._draw()

    def file_done(self) -> None:
        """Count one more file as finished (uploaded, duplicate or rejected)."""
        self._done_files += 1
        self._draw(force=True)

    def message(self, line: str, out: TextIO) -> None:
        """Print ``line`` to ``out`` without tearing the bar."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
        out.write(line + "\n")
        out.flush()
        self._draw(force=True)

    def close(self) -> None:
        """Remove the bar."""
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def line(self) -> str:
        """The bar as it reads now, e.g. ``[###...] 40%  80/200 files  9.5 pictures/s ...``."""
        elapsed = max(1e-6, self._clock() - self._started)
        done = sum(self._bytes.values())
        fraction = min(1.0, done / self._total)
        width = 30
        filled = int(fraction * width)
        pictures_per_second = self._done_files / elapsed
        megabytes_per_second = done / elapsed / 1e6
        if self._done_files:
            left: float | None = (self._files - self._done_files) / pictures_per_second
        elif done:
            left = (self._total - done) / (done / elapsed)
        else:
            left = None
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}"
            f"  {self._done_files}/{self._files} files  {pictures_per_second:.1f} pictures/s"
            f"  {megabytes_per_second:.1f} MB/s  ETA {_clock_time(left)}"
        )

    def _draw(self, *, force: bool = False) -> None:
        now = self._clock()
        if not self._enabled or (not force and now - self._drawn_at < 0.1):
            return
        self._drawn_at = now
        self._stream.write("\r" + self.line())
        self._stream.flush()


def _clock_time(seconds: float | None) -> str:
    """``seconds`` as ``M:SS`` or ``H:MM:SS``; ``--:--`` when not known yet."""
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


async def upload_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Upload files and folders; exit status 1 if any file was rejected."""
    if args.jobs < 1:
        raise CommandFailed("--jobs must be at least 1")
    report = UploadReport()
    files = collect_pictures(args.paths, report)
    for path, reason in report.rejected:
        _print_outcome(None, args, path, "rejected", reason=reason)
    async with ctx.logged_in() as session:
        price = parse_price(args.price, session.currency)
        sizes = {path: path.stat().st_size for path in files}
        bar = ProgressBar(sys.stderr, len(files), sum(sizes.values()))
        slots = asyncio.Semaphore(args.jobs)

        def metadata_for(path: Path) -> ItemMetadata:
            title = title_from_filename(path) if args.title_from_filename else None
            return ItemMetadata(
                title=title or args.title or UNTITLED,
                description=args.description,
                price_cents=price,
                stock=args.stock,
                tags=parse_tags(args.tags),
                public=not args.private,
            )

        async def one(path: Path) -> None:
            async with slots:
                try:
                    created = await upload_file(
                        session,
                        path,
                        metadata_for(path),
                        progress=lambda done, _total: bar.update(path, done),
                    )
                except (PixmartError, OSError, ValueError) as exc:
                    reason = exc.message if isinstance(exc, PixmartError) else str(exc)
                    report.rejected.append((path, reason))
                    _print_outcome(bar, args, path, "rejected", reason=reason)
                else:
                    if created.duplicate:
                        report.duplicates.append((path, created.item))
                        _print_outcome(bar, args, path, "duplicate", item=created.item)
                    else:
                        report.uploaded.append((path, created.item, created.warnings))
                        _print_outcome(
                            bar,
                            args,
                            path,
                            "uploaded",
                            item=created.item,
                            warnings=created.warnings,
                        )
                finally:
                    bar.file_done()

        await asyncio.gather(*(one(path) for path in files))
        bar.close()
    print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    return 1 if report.rejected else 0


def _print_outcome(
    bar: ProgressBar | None,
    args: argparse.Namespace,
    path: Path,
    outcome: str,
    *,
    item: ItemCard | None = None,
    reason: str = "",
    warnings: Sequence[str] = (),
) -> None:
    if args.json:
        record: dict[str, Any] = {"path": str(path), "outcome": outcome}
        if item is not None:
            record["item_id"] = item.id
        if reason:
            record["reason"] = reason
        if warnings:
            record["warnings"] = list(warnings)
        line = msgspec.json.encode(record).decode()
    elif item is not None:
        line = f"{outcome}: {path} -> item {item.id}"
        line += "".join(f"\n  warning: {warning}" for warning in warnings)
    else:
        line = f"{outcome}: {path}: {reason}"
    if bar is None:
        print(line)
    else:
        bar.message(line, sys.stdout)


# -- browse, item, edit, delete, tags ------------------------------------------------------


async def browse_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List items matching the filters, newest first unless sorted otherwise."""
    async with ctx.logged_in() as session:
        currency = session.currency
        filters = ListingFilters(
            tags=parse_tags(args.tags),
            text=args.query,
            mine=args.mine,
            min_price_cents=parse_price(args.min_price, currency) if args.min_price else None,
            max_price_cents=parse_price(args.max_price, currency) if args.max_price else None,
            in_stock=args.in_stock,
        )
        async for card in iter_items(
            session, filters, _SORTS[args.sort], max_items=args.limit or None
        ):
            if args.json:
                print_json(plain(card, currency))
            else:
                print(card_line(card, currency))
    return 0


async def item_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Show one item; optionally save its original picture."""
    async with ctx.logged_in() as session:
        currency = session.currency
        detail = await get_item(session, args.item_id)
        if args.download is not None:
            data, _ = await download_original(session, args.item_id)
            args.download.write_bytes(data)
    if args.json:
        print_json(plain(detail, currency))
        return 0
    print(f"{detail.title}  (item {detail.id})")
    print(f"  seller:  {detail.owner_name}")
    print(f"  price:   {format_price(detail.price_cents, currency)}    stock: {detail.stock}")
    print(f"  visible: {'public' if detail.public else 'private (only you)'}")
    print(
        f"  picture: {detail.width} x {detail.height} {detail.format}, {detail.size_bytes:,} bytes"
    )
    print(f"  sha256:  {detail.sha256}")
    if detail.tags:
        print(f"  tags:    {', '.join(detail.tags)}")
    if detail.description:
        print(f"\n{detail.description}")
    if args.download is not None:
        print(f"\nsaved the original to {args.download}")
    return 0


async def edit_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Change the given fields of an item."""
    async with ctx.logged_in() as session:
        currency = session.currency
        card = await edit_item(
            session,
            args.item_id,
            title=args.title,
            description=args.description,
            price_cents=parse_price(args.price, currency) if args.price is not None else None,
            stock=args.stock,
            tags=parse_tags(args.tags) if args.tags is not None else None,
            public=args.public,
        )
    if args.json:
        print_json(plain(card, currency))
    else:
        print(card_line(card, currency))
    return 0


async def delete_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Delete items; exit status 1 if any could not be deleted."""
    async with ctx.logged_in() as session:
        results = await delete_items(session, args.item_ids)
    failed = 0
    for result in results:
        if result.error is None:
            print(f"deleted {result.item_id}")
        else:
            failed += 1
            print(f"not deleted {result.item_id}: {result.message}", file=sys.stderr)
    return 1 if failed else 0


async def tags_command(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List tags (most used first) with the number of items you can see carrying each."""
    async with ctx.logged_in() as session:
        tags = await list_tags(session, args.prefix, args.limit)
    for tag in tags:
        if args.json:
            print_json(tag)
        else:
            print(f"{tag.count:>7}  {tag.name}")
    return 0
