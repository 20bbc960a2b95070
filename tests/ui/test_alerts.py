"""Pilot tests of "Save search" (ctrl+s) on the search screen: saved on the server, told in
words, and refused with a hint when the form asks for nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.widgets import Input

from protocol.alerts_client import saved_searches
from protocol.messages.catalogue import ListingFilters
from tests.ui.conftest import SIZE, AppFactory, Shop, open_gallery, type_text, until
from tui.screens import SearchScreen

ShopFactory = Callable[..., Awaitable[Shop]]

#: textual-image 0.12 still calls a Pillow API deprecated in Pillow 13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


async def test_save_this_search_from_the_search_screen(
    make_shop: ShopFactory, make_app: AppFactory
) -> None:
    shop = await make_shop(2)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_gallery(pilot, app)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen), what="the search")
        screen = app.screen
        await until(
            pilot,
            lambda: app.focused is screen.query_one("#search-text", Input),
            what="the focus in the query",
        )
        # The key is in the footer.
        assert any(
            binding.id == "search.save" for _key, binding, *_ in screen.active_bindings.values()
        )

        # An empty form saves nothing and says why.
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: any("Type words" in str(n.message) for n in app._notifications),
            what="the hint",
        )
        assert (await saved_searches(shop.seller)).searches == []

        await type_text(pilot, "harbour")
        screen.query_one("#search-tags", Input).value = "sea"
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: any("Saved search" in str(n.message) for n in app._notifications),
            what="the confirmation",
        )
        saved = (await saved_searches(shop.seller)).searches
        assert [s.filters for s in saved] == [ListingFilters(text="harbour", tags=["sea"])]
        told = [str(n.message) for n in app._notifications if "Saved search" in str(n.message)]
        assert "“harbour” · tags: sea" in told[0] and "inbox" in told[0]
