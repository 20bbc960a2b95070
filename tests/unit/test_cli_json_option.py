"""``--json`` is read the same before or after a subcommand's action (see json_option)."""

from __future__ import annotations

import pytest

from tui.cli import build_parser
from tui.commands.context import wants_json


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fav", "--json", "add", "3"], True),
        (["fav", "add", "3", "--json"], True),
        (["fav", "add", "3"], False),
        (["inbox", "--json", "read", "--all"], True),
        (["inbox", "clear"], False),
        (["cart", "--json", "add", "1"], True),
        (["cart", "add", "1", "2", "--json"], True),
        (["orders"], False),
        (["sales", "--summary", "--json"], True),
    ],
)
def test_json_before_or_after_the_action(argv: list[str], expected: bool) -> None:
    assert wants_json(build_parser().parse_args(argv)) is expected
