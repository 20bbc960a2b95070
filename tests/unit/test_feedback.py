"""Provides checks of the TUI's words for failures, warming-up image search first."""

from __future__ import annotations

from protocol.errors import Internal, RateLimited, Unavailable
from tui.feedback import describe_error, is_warming_up


def test_a_warming_model_is_not_described_as_a_failure() -> None:
    warming = Unavailable(
        "Image search is warming up", retry_after=4.6, details={"vision": "warming"}
    )
    assert is_warming_up(warming)
    assert describe_error(warming) == "Image search is warming up on the server; try again in 5 s."


def test_other_unavailable_answers_keep_their_own_words() -> None:
    failed = Unavailable("Image search is unavailable: no model", details={"vision": "failed"})
    assert not is_warming_up(failed)
    assert describe_error(failed) == "Image search is unavailable: no model"
    assert not is_warming_up(Unavailable("The server is shutting down", retry_after=2))
    assert not is_warming_up(Internal("Something went wrong"))
    assert (
        describe_error(RateLimited("Slow down.", retry_after=2.2)) == "Slow down. Try again in 2 s."
    )
