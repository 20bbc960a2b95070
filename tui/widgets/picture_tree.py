"""Provides :class:`PictureTree` and :class:`PathInput`: choosing picture files by browsing or by
typing a path, which Tab completes.

Both show folders and pictures only (JPEG, PNG, WebP; hidden entries left out), so what can be
chosen is what the server takes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Input

PICTURE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def is_picture(path: Path) -> bool:
    """Whether the file name says it is a picture the server accepts."""
    return path.suffix.lower() in PICTURE_SUFFIXES


def resolve_typed(text: str, root: Path) -> Path:
    """The path a person typed: ``~`` expanded, relative to ``root`` unless absolute."""
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else root / path


def path_completions(text: str, root: Path) -> list[str]:
    """Ways to complete a typed path: the folders (ending in ``/``) and pictures in its folder
    whose names start with what was typed after the last ``/``, as the person would type them.

    Hidden entries are offered only once a ``.`` is typed. Disk work: call it in a thread.
    """
    head, slash, prefix = text.rpartition("/")
    typed_folder = head + slash
    folder = resolve_typed(typed_folder, root) if typed_folder else root
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name.casefold())
    except OSError:
        return []
    completions: list[str] = []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        try:
            folder_entry = entry.is_dir()
        except OSError:
            continue
        if folder_entry:
            completions.append(f"{typed_folder}{name}/")
        elif is_picture(entry):
            completions.append(f"{typed_folder}{name}")
    return completions


class PictureTree(DirectoryTree):
    """A directory tree that shows folders and pictures only (hidden entries left out)."""

    BINDING_GROUP_TITLE = "Files"

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".") and (path.is_dir() or is_picture(path))
        ]


class PathSuggester(Suggester):
    """Suggests the first folder or picture that completes the typed path (shown greyed)."""

    def __init__(self, root: Path) -> None:
        super().__init__(use_cache=False)
        self.root = root

    async def get_suggestion(self, value: str) -> str | None:
        if not value.strip():
            return None
        completions = await asyncio.to_thread(path_completions, value, self.root)
        return completions[0] if completions else None


class PathInput(Input):
    """A field for a picture's path, relative to ``root``; Tab completes it as a shell does.

    One completion is taken whole; several are completed as far as they agree, and listed
    (:class:`Completions`) when they agree no further; nothing that matches is reported as no
    choices. With nothing typed, or a path already complete, Tab moves on to the next field.
    """

    BINDING_GROUP_TITLE = "Path"

    BINDINGS = [
        Binding(
            "tab",
            "complete",
            "Complete path",
            id="path.complete",
            show=False,
            tooltip="Complete the folder or file name being typed",
        ),
    ]

    @dataclass
    class Completions(Message):
        """Tab found several ways to go on (``choices``), or none (empty)."""

        path_input: PathInput
        choices: list[str]

    def __init__(
        self,
        root: Path,
        *,
        placeholder: str = "",
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(
            placeholder=placeholder, suggester=PathSuggester(root), id=id, classes=classes
        )
        self.root = root

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "complete" and not self.value.strip():
            return False  # Tab moves focus as usual
        return super().check_action(action, parameters)

    async def action_complete(self) -> None:
        """Complete the path being typed (see the class docs)."""
        typed = self.value
        choices = await asyncio.to_thread(path_completions, typed, self.root)
        if not choices:
            self.post_message(self.Completions(self, []))  # said, and the field keeps focus
            return
        common = choices[0] if len(choices) == 1 else os.path.commonprefix(choices)
        if len(common) > len(typed):
            self.value = common
            self.cursor_position = len(common)
        elif len(choices) == 1:
            self.screen.focus_next()  # complete already: on to the next field
            return
        if len(choices) > 1:
            self.post_message(self.Completions(self, choices))


__all__ = [
    "PICTURE_SUFFIXES",
    "PathInput",
    "PathSuggester",
    "PictureTree",
    "is_picture",
    "path_completions",
    "resolve_typed",
]
