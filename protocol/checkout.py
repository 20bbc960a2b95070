"""Provides checkout-once: a purchase that is never placed twice, however often it is retried.

Before anything is sent, a random checkout key is kept in the client config dir (written and
fsynced, one per server and user); the checkout goes with that key, and the key is forgotten
only once the server has answered for certain: with the order, or with an error that says
nothing was bought. A run that crashed, or lost the server, after sending leaves the key behind,
so the next attempt sends the same key and the server answers with the order the first attempt
placed instead of placing another. A key derived from the cart's contents would not do: buying
the same things twice on purpose must stay possible.

The TUI's cart and ``pixmart checkout`` both buy through :class:`CheckoutOnce`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Final

from protocol import commerce_client
from protocol.client import Session
from protocol.errors import BadRequest, Conflict, OutOfStock
from protocol.messages.commerce import OrderPlaced

#: Checkout errors that mean the server answered for certain and nothing was bought.
DEFINITE_REFUSALS: Final = (OutOfStock, Conflict, BadRequest)


class PendingCheckout:
    """The checkout key of one server and user, kept on disk until the checkout is settled.

    Args:
        root: The client config dir.
        server: The server's address.
        username: The buyer.
    """

    def __init__(self, root: Path, server: str, username: str) -> None:
        digest = hashlib.sha256(f"{server}\0{username.casefold()}".encode()).hexdigest()[:32]
        self.path = root / "checkout-keys" / digest

    def load(self) -> str | None:
        """The key left by an earlier run, or ``None``."""
        try:
            key = self.path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return key if len(key) == 32 and all(c in "0123456789abcdef" for c in key) else None

    def create(self) -> str:
        """A new key, durably on disk before it is returned (so before it is ever sent)."""
        key = commerce_client.new_checkout_key()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        # The rename itself must survive a crash, or the next run would make a new key.
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return key

    def settle(self) -> None:
        """Forget the key: the server said for certain what became of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class CheckoutOnce:
    """The key of the purchase under way, sent again by every retry until it is settled.

    Args:
        pending: where the key is kept on disk; ``None`` keeps it in memory only.
        durable: whether a key that cannot be kept on disk stops the checkout (the CLI, whose
            next run is a new process) or is kept in memory (the TUI, whose retries come from
            the same process).
    """

    def __init__(self, pending: PendingCheckout | None, *, durable: bool = True) -> None:
        self.pending = pending
        self.durable = durable
        self._key: str | None = None

    async def key(self) -> str:
        """The key of this purchase: the one kept from an unsettled attempt, or a new one.

        Raises:
            OSError: a durable key could not be kept on disk (nothing was sent).
        """
        if self._key is not None:
            return self._key
        key: str | None = None
        if self.pending is not None:
            try:
                key = await asyncio.to_thread(self.pending.load) or await asyncio.to_thread(
                    self.pending.create
                )
            except OSError:
                if self.durable:
                    raise
        self._key = key or commerce_client.new_checkout_key()
        return self._key

    async def settle(self) -> None:
        """Forget the key: the server said for certain what became of it."""
        self._key = None
        if self.pending is not None:
            try:
                await asyncio.to_thread(self.pending.settle)
            except OSError:
                pass  # a stale file only makes the next checkout ask about the old key first

    async def checkout(self, session: Session, expected_total_cents: int) -> OrderPlaced:
        """Buy the cart at the total the person confirmed, with this purchase's key.

        Raises:
            OutOfStock: some lines lack stock (settled: nothing was bought).
            Conflict: lines were deleted or made private, or the total changed (settled).
            BadRequest: the cart is empty (settled).
            PixmartError: anything else; the key is kept, so trying again is safe.
        """
        key = await self.key()
        try:
            placed = await commerce_client.checkout(
                session, expected_total_cents=expected_total_cents, checkout_key=key
            )
        except DEFINITE_REFUSALS:
            await self.settle()
            raise
        await self.settle()
        return placed


__all__ = ["DEFINITE_REFUSALS", "CheckoutOnce", "PendingCheckout"]
