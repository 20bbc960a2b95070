"""Provides ``pixmart cart``, ``checkout``, ``orders`` and ``sales`` (``--summary``: the dashboard).

``pixmart checkout`` never orders twice: it buys through :class:`protocol.checkout.CheckoutOnce`,
whose key is on disk before anything is sent, so a re-run after a crash or a lost server sends
the same key and gets the first run's order back instead of placing another.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable

from protocol import commerce_client as shop
from protocol.checkout import CheckoutOnce, PendingCheckout
from protocol.client import Session
from protocol.errors import Conflict, OutOfStock
from protocol.messages.commerce import (
    Cart,
    CartLine,
    LineProblem,
    Order,
    OrderSummary,
    Sale,
    describe_failure,
)
from protocol.money import format_price
from tui.commands.context import (
    CommandContext,
    CommandFailed,
    json_option,
    print_json,
    print_rows,
    wants_json,
)
from tui.commands.sales_summary import add_summary_options, show_summary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the commerce subcommands."""
    with_json = json_option()

    cart = commands.add_parser("cart", parents=[with_json], help="show or change your cart")
    cart.set_defaults(func=show_cart)
    actions = cart.add_subparsers(dest="cart_command", metavar="ACTION")
    add = actions.add_parser("add", parents=[with_json], help="put units of an item in the cart")
    add.add_argument("item_id", type=int, metavar="ID")
    add.add_argument("quantity", type=int, nargs="?", default=1, metavar="QTY")
    add.set_defaults(func=add_to_cart)
    change = actions.add_parser("set", parents=[with_json], help="change the units of an item")
    change.add_argument("item_id", type=int, metavar="ID")
    change.add_argument("quantity", type=int, metavar="QTY")
    change.set_defaults(func=set_quantity)
    remove = actions.add_parser("remove", parents=[with_json], help="take an item out")
    remove.add_argument("item_id", type=int, metavar="ID")
    remove.set_defaults(func=remove_from_cart)
    actions.add_parser("clear", parents=[with_json], help="empty the cart").set_defaults(
        func=clear_cart
    )

    buy = commands.add_parser("checkout", parents=[with_json], help="buy everything in the cart")
    buy.set_defaults(func=checkout)

    orders = commands.add_parser("orders", parents=[with_json], help="list your orders")
    orders.add_argument("order_id", type=int, nargs="?", metavar="ORDER", help="show this order")
    orders.set_defaults(func=show_orders)

    sales = commands.add_parser("sales", parents=[with_json], help="list sales of your items")
    add_summary_options(sales)
    sales.set_defaults(func=show_sales)


# -- cart ------------------------------------------------------------------------------------


async def show_cart(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Print the cart."""
    return await _cart_command(ctx, args, shop.get_cart)


async def add_to_cart(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Put units of an item in the cart, then print the cart."""
    _check_quantity(args.quantity)
    return await _cart_command(
        ctx, args, lambda session: shop.add_to_cart(session, args.item_id, args.quantity)
    )


async def set_quantity(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Change the units of an item in the cart, then print the cart."""
    _check_quantity(args.quantity)
    return await _cart_command(
        ctx, args, lambda session: shop.set_quantity(session, args.item_id, args.quantity)
    )


async def remove_from_cart(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Take an item out of the cart, then print the cart."""
    return await _cart_command(
        ctx, args, lambda session: shop.remove_from_cart(session, args.item_id)
    )


async def clear_cart(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Empty the cart."""
    return await _cart_command(ctx, args, shop.clear_cart)


async def _cart_command(
    ctx: CommandContext, args: argparse.Namespace, call: Callable[[Session], Awaitable[Cart]]
) -> int:
    """Run ``call`` in a logged-in session and print the cart it answers with."""
    async with ctx.logged_in() as session:
        cart = await call(session)
    _print_cart(cart, session.currency, args)
    return 0


def _check_quantity(quantity: int) -> None:
    if quantity < 1:
        raise CommandFailed("The quantity must be at least 1 (use 'pixmart cart remove ID')")


def _print_cart(cart: Cart, currency: str, args: argparse.Namespace) -> None:
    if wants_json(args):
        print_json(cart)
        return
    if not cart.lines:
        print("Your cart is empty")
        return
    for line in cart.lines:
        print(_cart_line(line, currency))
    print(f"Total: {format_price(cart.total_cents, currency)} ({_units(cart.units)})")
    if not cart.ready:
        print("Some lines cannot be bought as they are; change or remove them first")


def _cart_line(line: CartLine, currency: str) -> str:
    price = format_price(line.price_cents, currency)
    total = format_price(line.line_total_cents, currency)
    text = f"#{line.item_id:<6} {line.title[:40]:<40} {line.quantity:>4} x {price:>14} {total:>14}"
    notes = [_problem_words(line, problem, currency) for problem in line.problems]
    return f"{text}  [{'; '.join(notes)}]" if notes else text


def _problem_words(line: CartLine, problem: LineProblem, currency: str) -> str:
    if problem is LineProblem.DELETED:
        return "deleted by the seller"
    if problem is LineProblem.PRIVATE:
        return "no longer for sale"
    if problem is LineProblem.PRICE_CHANGED:
        return f"price changed, was {format_price(line.added_price_cents, currency)}"
    return "sold out" if line.stock == 0 else f"only {line.stock} left"


# -- checkout --------------------------------------------------------------------------------


async def checkout(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Buy the cart at the total shown; a re-run after a crash returns the first run's order."""
    async with ctx.logged_in() as session:
        assert session.user is not None  # ctx.connected() made sure
        purchase = CheckoutOnce(
            PendingCheckout(ctx.store.root, ctx.server, session.user.username), durable=True
        )
        await purchase.key()  # on disk before anything is sent
        cart = await shop.get_cart(session)
        currency = session.currency
        as_json = wants_json(args)
        if cart.lines and not as_json:
            print(f"Buying {_units(cart.units)} for {format_price(cart.total_cents, currency)}")
        try:
            placed = await purchase.checkout(session, cart.total_cents)
        except (OutOfStock, Conflict) as exc:
            raise CommandFailed(_failure_words(exc, currency)) from None
        still_in_cart = (await shop.get_cart(session)).units if placed.replayed else 0
    if as_json:
        print_json({"order": placed.order, "replayed": placed.replayed})
        return 0
    if placed.replayed:
        print("Your earlier checkout had already gone through; nothing more was bought.")
    _print_order(placed.order)
    if still_in_cart:
        print(f"Your cart still holds {_units(still_in_cart)}: run 'pixmart checkout' to buy them")
    return 0


def _failure_words(exc: OutOfStock | Conflict, currency: str) -> str:
    failures = shop.checkout_failures(exc)
    if not failures:
        return exc.message

    def money(cents: int) -> str:
        return format_price(cents, currency)

    lines = [f"  #{failure.item_id}: {describe_failure(failure, money)}" for failure in failures]
    details = exc.details or {}
    total, expected = details.get("total_cents"), details.get("expected_total_cents")
    if isinstance(total, int) and isinstance(expected, int) and total != expected:
        lines.append(f"  the total is now {money(total)}")
    return "\n".join(["Nothing was bought:", *lines, "Check your cart: pixmart cart"])


# -- orders and sales ------------------------------------------------------------------------


async def show_orders(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List the orders, newest first, or show one order with its lines."""
    as_json = wants_json(args)
    async with ctx.logged_in() as session:
        if args.order_id is not None:
            order = await shop.get_order(session, args.order_id)
            if as_json:
                print_json(order)
            else:
                _print_order(order)
            return 0
        await print_rows(
            shop.iter_orders(session),
            as_json=as_json,
            line=_order_summary,
            empty="You have no orders yet",
        )
    return 0


async def show_sales(ctx: CommandContext, args: argparse.Namespace) -> int:
    """List sales of the caller's items, newest first (with ``--summary``: the dashboard)."""
    if args.summary:
        return await show_summary(ctx, args)
    if args.csv:
        raise CommandFailed("--csv goes with --summary")
    async with ctx.logged_in() as session:
        await print_rows(
            shop.iter_sales(session),
            as_json=wants_json(args),
            line=_sale_line,
            empty="Nothing of yours has been sold yet",
        )
    return 0


def _print_order(order: Order) -> None:
    print(f"Order {order.id} of {_when(order.created_at)}")
    for line in order.lines:
        price = format_price(line.unit_price_cents, order.currency)
        total = format_price(line.line_total_cents, order.currency)
        print(
            f"  #{line.item_id:<6} {line.title[:40]:<40} {line.quantity:>4} x {price:>14}"
            f" {total:>14}  from {line.seller_name}"
        )
    print(f"Total paid: {format_price(order.total_cents, order.currency)}")


def _order_summary(summary: OrderSummary) -> str:
    what = summary.first_title
    if summary.line_count > 1:
        what += f" and {summary.line_count - 1} more"
    total = format_price(summary.total_cents, summary.currency)
    when = _when(summary.created_at)
    return f"{summary.id:>6}  {when}  {total:>14}  {what} ({_units(summary.units)})"


def _sale_line(sale: Sale) -> str:
    total = format_price(sale.line_total_cents, sale.currency)
    return (
        f"{_when(sale.sold_at)}  order {sale.order_id:<6} #{sale.item_id:<6} {sale.title[:40]:<40}"
        f" {sale.quantity:>4} x {format_price(sale.unit_price_cents, sale.currency)}"
        f" = {total}  to {sale.buyer_name}"
    )


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _units(count: int) -> str:
    return f"{count} unit{'' if count == 1 else 's'}"
