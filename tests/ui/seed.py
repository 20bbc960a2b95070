"""Provides deterministic demo items for UI tests: generated pictures uploaded via the protocol."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from protocol.catalogue_client import upload_file
from protocol.client import Session
from protocol.messages.catalogue import ItemCard, ItemMetadata

#: Words that make the generated titles; tags cycle through a few so filters have something to do.
_SUBJECTS = ["Sunset", "Harbour", "Forest", "Lantern", "Meadow", "Glacier", "Market", "Orchard"]
_TAGS = [["landscape", "warm"], ["sea", "blue"], ["landscape", "green"], ["night", "warm"]]


@dataclass(frozen=True)
class SeedItem:
    """One item to list: its picture is drawn from ``index``."""

    index: int
    title: str
    price_cents: int
    stock: int
    tags: list[str] = field(default_factory=list)
    public: bool = True
    description: str = ""


def demo_items(count: int, *, offset: int = 0) -> list[SeedItem]:
    """``count`` varied items (some sold out), the same every time."""
    items = []
    for n in range(offset, offset + count):
        subject = _SUBJECTS[n % len(_SUBJECTS)]
        items.append(
            SeedItem(
                index=n,
                title=f"{subject} no. {n + 1}",
                price_cents=500 + (n * 275) % 4500,
                stock=0 if n % 7 == 3 else 1 + n % 5,
                tags=list(_TAGS[n % len(_TAGS)]),
                description=f"A generated picture of a {subject.lower()}, print number {n + 1}.",
            )
        )
    return items


def draw_picture(index: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A small, distinct picture: a two-colour gradient sky, a hill and a sun."""
    width, height = size
    hue = (index * 0.137) % 1.0
    top = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.55, 0.95))
    bottom = tuple(int(c * 255) for c in colorsys.hsv_to_rgb((hue + 0.1) % 1.0, 0.8, 0.45))
    picture = Image.new("RGB", size)
    draw = ImageDraw.Draw(picture)
    for y in range(height):
        t = y / max(1, height - 1)
        colour = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    sun_x = 15 + (index * 23) % (width - 30)
    draw.ellipse([sun_x, 8, sun_x + 16, 24], fill=(255, 236, 160))
    hill = tuple(int(c * 255) for c in colorsys.hsv_to_rgb((hue + 0.33) % 1.0, 0.6, 0.5))
    draw.ellipse([-width // 2, height * 2 // 3, width * 3 // 2, height * 2], fill=hill)
    return picture


async def seed(session: Session, items: list[SeedItem], directory: Path) -> list[ItemCard]:
    """Upload ``items`` as the session's user; returns their cards in upload order."""
    directory.mkdir(parents=True, exist_ok=True)
    cards: list[ItemCard] = []
    for item in items:
        path = directory / f"picture-{item.index}.png"
        draw_picture(item.index).save(path)
        metadata = ItemMetadata(
            title=item.title,
            description=item.description,
            price_cents=item.price_cents,
            stock=item.stock,
            tags=item.tags,
            public=item.public,
        )
        created = await upload_file(session, path, metadata)
        cards.append(created.item)
    return cards


__all__ = ["SeedItem", "demo_items", "draw_picture", "seed"]
