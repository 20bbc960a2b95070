"""Provides ``pixmart account create``, ``login``, ``whoami``, ``logout`` and ``passwd``."""

from __future__ import annotations

import argparse
import os

from tui.commands.context import CommandContext, read_password


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the account subcommands."""
    account = commands.add_parser("account", help="manage accounts")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    create = account_commands.add_parser("create", help="create an account")
    create.add_argument("user")
    create.set_defaults(func=create_account)

    login_parser = commands.add_parser(
        "login", help="log in and keep the session for later commands"
    )
    login_parser.add_argument("user")
    login_parser.set_defaults(func=login)

    commands.add_parser("whoami", help="show who you are logged in as").set_defaults(func=whoami)
    commands.add_parser("logout", help="end the saved session").set_defaults(func=logout)
    commands.add_parser("passwd", help="change your password").set_defaults(func=passwd)


async def create_account(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Create an account."""
    password = read_password(confirm=True)
    async with ctx.session(with_token=False) as session:
        user = await session.create_account(args.user, password)
    ctx.store.remember(server=ctx.server, username=user.username)
    print(f"Created account {user.username}. Log in with: pixmart login {user.username}")
    return 0


async def login(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Log in and save the session token."""
    password = read_password()
    async with ctx.session(with_token=False) as session:
        user = await session.login(args.user, password)
    ctx.store.remember(server=ctx.server, username=user.username)
    print(f"Logged in as {user.username} on {ctx.server}")
    return 0


async def whoami(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Print the logged-in user."""
    async with ctx.logged_in() as session:
        user = await session.whoami()
    print(f"{user.username}{' (admin)' if user.is_admin else ''} on {ctx.server}")
    return 0


async def logout(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Revoke the saved session."""
    session = ctx.session()
    await session.connect()
    try:
        if session.user is not None:
            await session.logout()
    finally:
        await session.close()
    ctx.store.save_token(ctx.server, None)
    print("Logged out")
    return 0


async def passwd(ctx: CommandContext, args: argparse.Namespace) -> int:
    """Change the password; other sessions end."""
    async with ctx.logged_in() as session:
        old = read_password("Current password: ")
        new = os.environ.get("PIXMART_NEW_PASSWORD") or read_password(
            "New password: ", confirm=True
        )
        await session.change_password(old, new)
    print("Password changed; every other session has been logged out")
    return 0
