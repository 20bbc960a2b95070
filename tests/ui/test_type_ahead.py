"""Tests of :class:`tui.type_ahead.TypeAheadApp`: keys arriving in one burst go where they belong.

The keys are posted to the App all at once, before it has handled the first, as a terminal
delivers a password manager's auto-type; Textual's own Pilot would wait for each key to settle.
"""

from __future__ import annotations

import time

from textual import events, on
from textual.app import ComposeResult
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, Static

from tui.type_ahead import TypeAheadApp


class Form(TypeAheadApp[tuple[str, str]]):
    """Two fields; Tab moves on (Textual's binding), Enter moves to the next field in a handler,
    as the login form does, and submits from the last."""

    def compose(self) -> ComposeResult:
        yield Input(id="name")
        yield Input(id="password", password=True)

    @on(Input.Submitted, "#name")
    def _next_field(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _submit(self) -> None:
        self.exit((self.query_one("#name", Input).value, self.query_one("#password", Input).value))


def _burst(app: Form, *keys: str) -> None:
    """Post every key of ``keys`` (a word is typed letter by letter) without waiting."""
    for key in keys:
        if key in {"tab", "enter"}:
            app.post_message(events.Key(key, "\t" if key == "tab" else "\r"))
            continue
        for char in key:
            app.post_message(events.Key("space" if char == " " else char, char))


async def _submitted(pilot: Pilot[tuple[str, str]], timeout: float = 5.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while pilot.app.return_value is None:
        assert time.monotonic() < deadline, "the form was never submitted"
        await pilot.pause(0.01)
    return pilot.app.return_value


async def test_a_tab_typed_ahead_moves_on_before_the_keys_after_it() -> None:
    app = Form()
    async with app.run_test() as pilot:
        _burst(app, "viewer", "tab", "viewer password 1", "enter")
        assert await _submitted(pilot) == ("viewer", "viewer password 1")


async def test_an_enter_that_moves_focus_in_a_handler_is_waited_for() -> None:
    app = Form()
    async with app.run_test() as pilot:
        _burst(app, "alice", "enter", "secret words", "enter")
        assert await _submitted(pilot) == ("alice", "secret words")


async def test_keys_typed_with_pauses_still_arrive_in_order() -> None:
    app = Form()
    async with app.run_test() as pilot:
        await pilot.press(*"bob", "tab", *"pw", "enter")
        assert await _submitted(pilot) == ("bob", "pw")


class Search(Screen[None]):
    """A screen that puts the focus in its field when it opens, as the search screen does."""

    def compose(self) -> ComposeResult:
        yield Input(id="query")

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()


class Shop(TypeAheadApp[None]):
    """``s`` opens :class:`Search`."""

    BINDINGS = [("s", "search", "Search")]

    def compose(self) -> ComposeResult:
        yield Static("the gallery")

    def action_search(self) -> None:
        self.push_screen(Search())


async def test_keys_typed_after_one_that_opens_a_screen_reach_that_screen() -> None:
    app = Shop()
    async with app.run_test() as pilot:
        for char in "sharbour":
            app.post_message(events.Key(char, char))
        deadline = time.monotonic() + 5.0
        while not (isinstance(app.screen, Search) and app.screen.query_one(Input).value):
            assert time.monotonic() < deadline, "nothing was typed into the search"
            await pilot.pause(0.01)
        await pilot.pause(0.1)
        assert app.screen.query_one(Input).value == "harbour"
