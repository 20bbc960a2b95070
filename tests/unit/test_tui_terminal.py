"""Tests of :mod:`tui.terminal`: XTVERSION replies and what they say about kitty's graphics."""

from __future__ import annotations

import pytest

from tui.terminal import TerminalVersion, draws_kitty_placeholders, parse_xtversion


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("kitty(0.26.5)", TerminalVersion("kitty", (0, 26, 5))),
        ("kitty(0.32.2)", TerminalVersion("kitty", (0, 32, 2))),
        ("XTerm(379)", TerminalVersion("xterm", (379,))),
        ("WezTerm 20240203-110809-5046fc22", TerminalVersion("wezterm", (20240203,))),
        ("foot(1.16.2)", TerminalVersion("foot", (1, 16, 2))),
        ("", None),
        ("???", None),
    ],
)
def test_xtversion_replies_give_name_and_version(
    reply: str, expected: TerminalVersion | None
) -> None:
    assert parse_xtversion(reply) == expected


@pytest.mark.parametrize(
    ("terminal", "draws"),
    [
        (TerminalVersion("kitty", (0, 26, 5)), False),  # Debian bookworm's
        (TerminalVersion("kitty", (0, 27, 1)), False),
        (TerminalVersion("kitty", (0, 28, 0)), True),
        (TerminalVersion("kitty", (0, 35, 2)), True),
        (TerminalVersion("ghostty", (1, 0)), True),
        (None, True),
    ],
)
def test_only_kitty_before_0_28_cannot_draw_placeholders(
    terminal: TerminalVersion | None, draws: bool
) -> None:
    assert draws_kitty_placeholders(terminal) is draws
