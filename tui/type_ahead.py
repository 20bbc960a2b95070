"""Provides :class:`TypeAheadApp`: an App that takes keys typed ahead in one burst in order.

Textual hands each key to the widget focused when the App reads it, by posting it to that
widget's queue. Keys that arrive together (a password manager's auto-type, a fast typist, a
paste of ``name<Tab>password<Enter>`` through ``tmux send-keys``) are all read before the first
of them is handled, so they all land in the field focused at the start: the Tab that should
have moved on is handled last. :class:`TypeAheadApp` hands a key on only once the key before it
has settled, that is once the widget it went to, and every node its consequences bubble through
up to the App, has emptied its queue; by then any focus change the key caused (a Tab binding, a
form moving on after Enter) has happened, and the next key goes where the person meant it to.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any, Final, TypeVar

from textual import events
from textual.app import App
from textual.message_pump import MessagePump
from textual.timer import Timer

ReturnType = TypeVar("ReturnType")

#: How often queues are looked at again for one key before the wait ends regardless: a widget
#: with a fast timer (a spinner) may never be seen empty.
MAX_REQUEUES: Final = 32
#: A key not settled by then (its widget was removed with the key still queued, say) stops
#: holding back the ones after it.
SETTLE_TIMEOUT: Final = 0.5


def _has_queued(node: MessagePump) -> bool:
    """Whether ``node`` has messages waiting, counting the one it has already taken a peek at.

    A message pump takes the message after the one it handles off the queue before handling it
    (to merge messages that replace each other), so the queue alone can look empty.
    """
    return bool(node.message_queue_size) or node._pending_message is not None


class TypeAheadApp(App[ReturnType]):
    """An App that hands each typed key (or paste) to the widget focused once earlier ones settle.

    Keys typed with pauses between them pass straight through, as in any Textual App; only keys
    that arrive while an earlier one is still being handled wait, in order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._typed_ahead: deque[events.Key | events.Paste] = deque()
        self._unsettled: int = 0  # generation of the key in flight; 0 when none is
        self._generations: int = 0
        self._settle_timer: Timer | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.Paste) and not event.is_forwarded:
            if self._unsettled:
                self._typed_ahead.append(event)
                return
            await self._hand_on(event)
            return
        await super().on_event(event)

    async def _hand_on(self, event: events.Key | events.Paste) -> None:
        """Handle ``event`` as Textual would, then hold later keys until it has settled."""
        target: MessagePump = self.focused or self.screen
        self._generations += 1
        generation = self._unsettled = self._generations
        self._settle_timer = self.set_timer(SETTLE_TIMEOUT, partial(self._settled, generation))
        await super().on_event(event)
        self._wait_in(target, target, generation, MAX_REQUEUES)

    def _wait_in(
        self, node: MessagePump, target: MessagePump, generation: int, budget: int
    ) -> None:
        """Wait for ``node`` to empty its queue, then its parent, up to the App.

        At the App the key has bubbled all the way, but its binding may have posted to a widget
        below (an Input's ``enter`` binding posts ``Submitted`` to the Input), so the wait starts
        again from any node between the key's widget, or the one now focused, and the App that
        still has messages queued.
        """
        if generation != self._unsettled:
            return
        if budget and _has_queued(node):
            if node.call_later(self._wait_in, node, target, generation, budget - 1):
                return
        if node is self:
            busy = self._busy_node(target) if budget else None
            if busy is None or not busy.call_later(
                self._wait_in, busy, target, generation, budget - 1
            ):
                self.call_next(self._settled, generation)
            return
        parent = node._parent
        following = parent if isinstance(parent, MessagePump) else self
        if not following.call_later(self._wait_in, following, target, generation, budget):
            self.call_next(self._settled, generation)

    def _busy_node(self, target: MessagePump) -> MessagePump | None:
        """The first node with messages queued from ``target`` or the focus up to the App."""
        for start in (target, self.focused):
            node = start
            while isinstance(node, MessagePump) and node is not self:
                if _has_queued(node):
                    return node
                node = node._parent
        return None

    async def _settled(self, generation: int) -> None:
        """The key of ``generation`` has been handled: hand on the next one typed ahead."""
        if generation != self._unsettled:
            return
        self._unsettled = 0
        if self._settle_timer is not None:
            self._settle_timer.stop()
            self._settle_timer = None
        if self._typed_ahead:
            await self._hand_on(self._typed_ahead.popleft())


__all__ = ["TypeAheadApp"]
