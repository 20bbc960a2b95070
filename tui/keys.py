"""Provides the list of key bindings that the help screen and the command palette show."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import App
from textual.dom import DOMNode
from textual.screen import Screen

EVERYWHERE = "Everywhere"
THIS_SCREEN = "This screen"


@dataclass(frozen=True)
class KeyCommand:
    """One described binding in reach of the focused widget.

    Attributes:
        keys: how the keys are shown, e.g. ``"n / esc"``.
        description: what the binding does.
        action: the action to run.
        node: where the action runs (the app, the screen or a widget).
        section: ``"Everywhere"``, ``"This screen"`` or the widget's group title.
        enabled: whether the action can run right now.
        tooltip: a longer explanation, if any.
    """

    keys: str
    description: str
    action: str
    node: DOMNode
    section: str
    enabled: bool
    tooltip: str = ""


def _section(node: DOMNode) -> str | None:
    """Which section a node's bindings belong to, or ``None`` to leave them out."""
    if isinstance(node, App):
        return EVERYWHERE
    if isinstance(node, Screen):
        return THIS_SCREEN
    if type(node).__module__.startswith("tui."):
        return node.BINDING_GROUP_TITLE or type(node).__name__
    return None


def key_commands(screen: Screen[object]) -> list[KeyCommand]:
    """The described bindings of ``screen``, its focused widgets and the app, in that order.

    pixmart's bindings all carry an ``id``; Textual's own (cursor keys of a text field, focus
    cycling and the like) are left out unless shown in the footer, and so is the command palette
    key, which the help mentions on its own. One entry lists every key bound to one action.
    """
    app = screen.app
    merged: dict[tuple[int, str], KeyCommand] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.system or not binding.description or binding.action == "command_palette":
            continue
        if binding.id is None and not binding.show:
            continue  # Textual's own plumbing (focus cycling, copy), not pixmart's keys
        section = _section(active.node)
        if section is None:
            if not binding.show:
                continue
            section = active.node.BINDING_GROUP_TITLE or type(active.node).__name__
        shown = binding.key_display or app.get_key_display(binding.with_key(key))
        identity = (id(active.node), binding.action)
        known = merged.get(identity)
        if known is not None:
            if binding.key_display:
                continue  # one display stands for all of the binding's keys
            merged[identity] = KeyCommand(
                keys=f"{known.keys} / {shown}",
                description=known.description,
                action=known.action,
                node=known.node,
                section=known.section,
                enabled=known.enabled,
                tooltip=known.tooltip,
            )
            continue
        merged[identity] = KeyCommand(
            keys=shown,
            description=binding.description,
            action=binding.action,
            node=active.node,
            section=section,
            enabled=active.enabled,
            tooltip=binding.tooltip,
        )
    order = {THIS_SCREEN: 1, EVERYWHERE: 2}
    return sorted(merged.values(), key=lambda command: order.get(command.section, 0))


__all__ = ["EVERYWHERE", "THIS_SCREEN", "KeyCommand", "key_commands"]
