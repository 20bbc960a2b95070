"""Provides the TUI launcher: store, trust policy with the first-use dialog, session, App."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from protocol.client import Backoff, Session
from protocol.trust import TrustPolicy
from tui.app import PixmartApp
from tui.data.server_identity import trust_identity
from tui.feedback import normalise_server_url
from tui.store import ClientStore


def build_app(
    *,
    store: ClientStore,
    trust: TrustPolicy,
    server_url: str | None,
    backoff: Backoff | None = None,
    client_name: str = "pixmart-tui",
    listing_batch: int | None = None,
    upload_root: Path | None = None,
    cache_root: Path | None = None,
) -> PixmartApp:
    """The app wired like the real thing: tokens saved per server, first contact asked in a dialog.

    Args:
        store: remembered servers, user names and tokens.
        trust: how to trust servers; its ``on_first_use`` is set to the app's dialog unless a CA
            file or another decider is in place.
        server_url: the server to connect to at start-up, if known.
        backoff: reconnect delays (tests use short ones).
        client_name: shown in the server's logs.
        listing_batch: items per listing batch (the server's default when ``None``).
        upload_root: where the upload screen's file tree starts (the working directory).
        cache_root: the client's cache dir (the user cache dir, or ``PIXMART_CACHE_DIR``, when
            ``None``); what it keeps of a server is filed under the identity ``trust`` gives it.
    """

    def session_for(url: str) -> Session:
        session = Session(
            url, trust, token=store.token(url), client_name=client_name, backoff=backoff
        )
        session.on_token(lambda token: store.save_token(url, token))
        return session

    app = PixmartApp(
        store=store,
        session_factory=session_for,
        server_url=server_url,
        listing_batch=listing_batch,
        upload_root=upload_root,
        cache_root=cache_root,
        server_identity=lambda url: trust_identity(trust, url),
    )
    if trust.ca_file is None and trust.on_first_use is None:
        trust.on_first_use = app.confirm_first_use
    return app


def run_tui(args: argparse.Namespace) -> int:
    """Run the full-screen client with the global ``pixmart`` options; returns the exit status."""
    # Terminal detection (graphics protocol, cell size) must happen before Textual owns the
    # terminal; the widget module queries the cell size when it is imported.
    import textual_image.widget  # noqa: F401

    store = ClientStore()
    server = args.server or os.environ.get("PIXMART_SERVER") or store.last_server
    try:
        server_url = normalise_server_url(server) if server else None
    except ValueError as exc:
        print(f"pixmart: {exc}", file=sys.stderr)
        return 2
    trust = TrustPolicy(
        ca_file=Path(args.ca_file) if args.ca_file else None,
        fingerprint=args.trust or os.environ.get("PIXMART_TRUST"),
        known=store.known_servers,
    )
    app = build_app(store=store, trust=trust, server_url=server_url)
    app.run()
    return app.return_code or 0


__all__ = ["build_app", "run_tui"]
