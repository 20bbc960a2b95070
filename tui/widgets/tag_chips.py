"""Provides :class:`TagChips`: tags the image model proposes for an item, as chips to pick.

Nothing is added by itself: the person picks chips (space, or a click), or all of them (``a``),
and Enter hands the picked tags to the screen (:class:`TagChips.Accepted`), which adds them to
the item and says how it went (:meth:`TagChips.added` or :meth:`TagChips.reopen`).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from protocol.messages.vision import TagSuggestion


class TagChips(Widget, can_focus=True):
    """``Suggested tags: [✓ espresso 62%] [+ cup 21%]`` for one item, with a cursor.

    Args:
        item_id: the item the tags are for.
        suggestions: the model's proposals, most probable first.
    """

    BINDING_GROUP_TITLE = "Suggested tags"

    DEFAULT_CSS = """
    TagChips {
        height: auto;
        width: 1fr;
        padding: 0 0 0 2;
        &:focus { background: $boost; }
    }
    """

    BINDINGS = [
        Binding("left,h", "move(-1)", "Previous tag", show=False, id="chips.previous"),
        Binding("right,l", "move(1)", "Next tag", show=False, id="chips.next"),
        Binding("space", "pick", "Pick tag", id="chips.pick", tooltip="Pick or unpick it"),
        Binding("a", "pick_all", "Pick all", id="chips.all"),
        Binding(
            "enter",
            "accept",
            "Add tags",
            id="chips.accept",
            tooltip="Add the picked tags to the item",
        ),
    ]

    cursor: reactive[int] = reactive(0)

    @dataclass
    class Accepted(Message):
        """The person asked to add ``tags`` to the item."""

        chips: TagChips
        item_id: int
        tags: list[str]

    def __init__(
        self,
        item_id: int,
        suggestions: list[TagSuggestion],
        *,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.item_id = item_id
        self.suggestions = suggestions
        #: The tags picked so far, in the order offered.
        self.picked: set[str] = set()
        #: ``"open"`` to pick, ``"adding"`` while the server is asked, ``"added"`` once done.
        self.state = "open"
        self._added: list[str] = []

    @property
    def picked_tags(self) -> list[str]:
        """The picked tags, most probable first."""
        return [s.tag for s in self.suggestions if s.tag in self.picked]

    # -- drawing -------------------------------------------------------------------------------

    def _content(self, width: int) -> Content:
        """What the widget shows at ``width`` cells: chips break between lines, never inside."""
        if self.state == "added":
            return Content.from_markup(
                "[$text-success]✓ Tags added: $tags[/]", tags=", ".join(self._added)
            )
        if self.state == "adding":
            return Content.from_markup(
                "[$text-muted]Adding $tags…[/]", tags=", ".join(self.picked_tags)
            )
        pieces: list[Content] = [Content.from_markup("[$text-muted]Suggested tags:[/]")]
        for index, suggestion in enumerate(self.suggestions):
            picked = suggestion.tag in self.picked
            style = "bold $text-success" if picked else "$text"
            if index == self.cursor and self.has_focus:
                style += " reverse"
            pieces.append(
                Content.from_markup(
                    f"[{style} @click=pick({index})]$chip[/]",
                    chip=f"[{'✓' if picked else '+'} {suggestion.tag} "
                    f"{round(100 * suggestion.score)}%]",
                )
            )
        if self.has_focus:
            pieces.append(Content.from_markup("[$text-muted]space pick · a all · enter add[/]"))
        lines: list[Content] = []
        line = Content("")
        for piece in pieces:
            if line.cell_length and line.cell_length + 1 + piece.cell_length > width:
                lines.append(line)
                line = piece
            else:
                line = line + Content(" ") + piece if line.cell_length else piece
        lines.append(line)
        return Content("\n").join(lines)

    def render(self) -> Content:
        return self._content(self.content_size.width or 80)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._content(width).wrap(width)) if width else 0

    def _redraw(self) -> None:
        """Draw afresh; the height may change (a line of chips more or less)."""
        self.refresh(layout=True)

    def on_focus(self) -> None:
        self._redraw()

    def on_blur(self) -> None:
        self._redraw()

    def watch_cursor(self) -> None:
        self._redraw()

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("move", "pick", "pick_all", "accept"):
            return self.state == "open"  # keys fall through once the tags are on their way
        return True

    def action_move(self, step: int) -> None:
        """Move the cursor to the previous or next chip."""
        self.cursor = max(0, min(len(self.suggestions) - 1, self.cursor + step))

    def action_pick(self, index: int | None = None) -> None:
        """Pick or unpick the chip under the cursor (or the one clicked)."""
        if self.state != "open" or not self.suggestions:
            return
        if index is not None:
            self.cursor = max(0, min(len(self.suggestions) - 1, index))
            self.focus()
        tag = self.suggestions[self.cursor].tag
        self.picked.symmetric_difference_update({tag})
        self._redraw()

    def action_pick_all(self) -> None:
        """Pick every chip (or unpick them all when all are picked)."""
        every = {s.tag for s in self.suggestions}
        self.picked = set() if self.picked == every else every
        self._redraw()

    def action_accept(self) -> None:
        """Ask for the picked tags to be added to the item."""
        tags = self.picked_tags
        if not tags:
            self.notify("Pick tags first: space picks one, a picks all.", severity="warning")
            return
        self.state = "adding"
        self._redraw()
        self.post_message(self.Accepted(self, self.item_id, tags))

    # -- outcome -------------------------------------------------------------------------------

    def added(self, tags: list[str]) -> None:
        """The tags are on the item now: say so, and stop offering them."""
        self.state = "added"
        self._added = tags
        self.can_focus = False
        self._redraw()

    def reopen(self) -> None:
        """Adding failed: offer the chips again, as they were."""
        self.state = "open"
        self._redraw()


__all__ = ["TagChips"]
