"""Provides Pilot tests of the key footer: every key a screen shows is on screen, at 80x24 too.

The footer (:class:`tui.widgets.KeyFooter`) flows its keys onto more rows when they do not fit
one; these tests hold every main screen to it against a real server: each binding shown in the
footer (``show=True``, not hidden by ``check_action``) has its key drawn in the footer, inside
the terminal and not covered or scrolled away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets._footer import FooterKey

from tests.ui.conftest import AppFactory, Shop, open_gallery, until
from tui.app import SHOP_MODES
from tui.screens import ItemScreen, LoginScreen
from tui.store import ClientStore
from tui.widgets import CatalogueView, KeyFooter

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

#: The size many terminals open at, and the size of the snapshots.
SIZES = [(80, 24), (120, 40)]


def shown_actions(screen: Screen[object]) -> set[str]:
    """The actions the footer should offer (Textual's footer shows one key per action)."""
    actions = {a.binding.action for a in screen.active_bindings.values() if a.binding.show}
    return actions | {"command_palette"}  # shown by the footer on its own


def footer_actions(screen: Screen[object]) -> set[str]:
    """The actions of the keys in the screen's footer."""
    return {key.action for key in screen.query_one(KeyFooter).query(FooterKey)}


def footer_problems(screen: Screen[object]) -> list[str]:
    """What keeps a key of the screen's bindings from being seen in its footer, if anything."""
    footer = screen.query_one(KeyFooter)
    name = type(screen).__name__
    problems = [
        f"{name}: no key for {action}"
        for action in sorted(shown_actions(screen) - footer_actions(screen))
    ]
    if footer.max_scroll_y:
        problems.append(f"{name}: footer rows scrolled out of sight")
    width, height = screen.app.size
    for key in footer.query(FooterKey):
        region = key.region
        where = f"{name}: {key.key_display} {key.description} at {region}"
        if not region.area:
            problems.append(f"{where}: not laid out")
        elif not footer.region.contains_region(region):
            problems.append(f"{where}: outside the footer, {footer.region}")
        elif region.right > width or region.bottom > height:
            problems.append(f"{where}: off the terminal")
        # Drawn there: the widget under the key's first and last cell is the key itself.
        elif any(
            screen.get_widget_at(x, region.y)[0] is not key for x in (region.x, region.right - 1)
        ):
            problems.append(f"{where}: covered")
    return problems


async def assert_every_key_visible(pilot: Pilot[None], screen: Screen[object]) -> None:
    """Every key the screen's bindings show is in its footer, drawn where nothing covers it.

    The footer recomposes (after a refresh) whenever the bindings change and lays its new keys
    out after that, so this waits, bounded, for a footer without problems; if none comes, it
    fails with the problems last seen.
    """
    try:
        await until(pilot, lambda: not footer_problems(screen))
    except AssertionError:
        raise AssertionError("; ".join(footer_problems(screen))) from None


@pytest.mark.parametrize("size", SIZES, ids=lambda size: "{}x{}".format(*size))
async def test_every_shop_screen_shows_every_key(
    make_shop: ShopFactory, make_app: AppFactory, size: tuple[int, int]
) -> None:
    """Each shop screen and an item page: all their shown keys and the app's, F (favourites)
    and every other screen's key among them."""
    await make_shop(3)
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_gallery(pilot, app)
        await assert_every_key_visible(pilot, app.screen)
        gallery_actions = footer_actions(app.screen)
        for mode in SHOP_MODES:
            assert f"go('{mode}')" in gallery_actions, f"no key for {mode} in the footer"
        for mode in SHOP_MODES:
            await app.go(mode)
            await until(pilot, lambda: app.current_mode == mode, what=mode)  # noqa: B023
            await assert_every_key_visible(pilot, app.screen)
        await app.go("gallery")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ItemScreen), what="the item")
        await assert_every_key_visible(pilot, app.screen)


async def test_login_screen_shows_every_key(make_app: AppFactory, tmp_path: Path) -> None:
    """Logged out, at 80x24: the login form's keys and the app's that apply."""
    app = make_app(store=ClientStore(tmp_path / "logged-out"))
    async with app.run_test(size=SIZES[0]) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LoginScreen), what="the login form")
        await assert_every_key_visible(pilot, app.screen)


async def test_footer_reflows_when_the_terminal_narrows(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    """The gallery's footer keys fit one row at 160 columns and take two at 80; every key
    stays visible across the resize, and the cards' area gives up the row."""
    await make_shop(3)
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await open_gallery(pilot, app)
        await assert_every_key_visible(pilot, app.screen)
        footer = app.screen.query_one(KeyFooter)
        wide_rows = footer.region.height
        assert wide_rows == 1
        await pilot.resize_terminal(*SIZES[0])
        await until(pilot, lambda: footer.region.height > wide_rows, what="a footer row more")
        await assert_every_key_visible(pilot, app.screen)
        view = app.screen.query_one(CatalogueView)
        assert view.region.bottom <= footer.region.y
