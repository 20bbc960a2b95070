"""The key footer and its flow layout on their own, in small apps with no server: keys wrap onto
more rows as the width shrinks, and re-flow when a binding is hidden or the terminal resized."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.layout import Layout
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from tests.ui.conftest import until
from tui.widgets.flow_layout import FlowLayout
from tui.widgets.key_footer import KeyFooter


class Flowing(Container):
    """A container laid out by :class:`FlowLayout`."""

    DEFAULT_CSS = "Flowing { height: auto; } Flowing Static { width: 10; margin-right: 1; }"

    def __init__(self, *children: Static) -> None:
        super().__init__(*children)
        self._flow = FlowLayout()

    @property
    def layout(self) -> Layout:
        return self._flow


class FlowApp(App[None]):
    def compose(self) -> ComposeResult:
        with Flowing():
            for i in range(5):
                yield Static(str(i))


async def test_children_wrap_like_words() -> None:
    """Five 10-cell children in 32 columns: three a row (the third ends at 32 with one-cell
    gaps), the rest on the second row from its start; the container is two rows high, three
    when the width holds only two a row."""
    app = FlowApp()
    async with app.run_test(size=(32, 10)) as pilot:
        await pilot.pause()
        at = [(s.region.x, s.region.y) for s in app.query(Static)]
        assert at == [(0, 0), (11, 0), (22, 0), (0, 1), (11, 1)]
        assert app.query_one(Flowing).region.height == 2
        await pilot.resize_terminal(21, 10)  # two a row
        await until(pilot, lambda: app.query_one(Flowing).region.height == 3)
        assert [(s.region.x, s.region.y) for s in app.query(Static)][2] == (0, 1)


class KeysApp(App[None]):
    """Eight described keys, one of which ``hide_last`` hides from the footer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(key, f"act('{key}')", f"Action {key}", id=f"test.{key}") for key in "abcdefgh"
    ]
    hide_last = False

    def __init__(self) -> None:
        super().__init__()
        self.acted: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("content", id="content")
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.hide_last and parameters == ("h",))

    def action_act(self, key: str) -> None:
        self.acted.append(key)


def rows(app: KeysApp) -> dict[int, list[str]]:
    """The footer's keys by screen row, left to right."""
    by_row: dict[int, list[str]] = {}
    for key in sorted(app.query(FooterKey), key=lambda key: key.region.x):
        by_row.setdefault(key.region.y, []).append(key.key_display)
    return by_row


async def test_the_footer_grows_a_row_rather_than_clip_keys() -> None:
    """Eight "x Action x" keys (11 cells each with the gap, and ^p palette) fit two rows at 80
    columns (a click on one of the second row presses it) and take more at 40; hiding a key
    re-flows them; the content gives up the rows."""
    app = KeysApp()
    async with app.run_test(size=(80, 10)) as pilot:
        footer = app.query_one(KeyFooter)
        await until(pilot, lambda: len(app.query(FooterKey)) == 9, what="the keys")
        await until(pilot, lambda: footer.region.height == 2, what="two rows")
        assert list(rows(app).values())[0] == list("abcdefg")
        # A key on the second row is where it is drawn: a click on it presses it.
        [h] = [key for key in app.query(FooterKey) if key.key == "h"]
        await pilot.click(h)
        await until(pilot, lambda: app.acted == ["h"], what="h pressed by a click")
        await pilot.resize_terminal(40, 10)
        await until(pilot, lambda: footer.region.height == 3, what="three rows")
        assert [len(keys) for keys in rows(app).values()] == [3, 3, 3]
        app.hide_last = True
        app.refresh_bindings()
        await until(pilot, lambda: "h" not in sum(rows(app).values(), []), what="h hidden")
        await until(pilot, lambda: [len(k) for k in rows(app).values()] == [3, 3, 2])
        content = app.query_one("#content")
        assert content.region.bottom <= footer.region.y
