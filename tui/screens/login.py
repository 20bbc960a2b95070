"""Provides :class:`LoginScreen`: server address, user name and password, or a new account."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Grid, Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Static

from tui.feedback import normalise_server_url
from tui.messages import LoggedIn
from tui.screens.base import PixmartScreen

DEFAULT_SERVER = "wss://127.0.0.1:8765"
MIN_PASSWORD = 8


class LoginScreen(PixmartScreen):
    """Log in, or create an account and log in.

    Focus starts in the user name when the server is known (``--server`` or remembered), in the
    server address otherwise. Enter moves on to the next empty field and submits from the last;
    ctrl+n switches between logging in and creating an account.
    """

    TITLE = "Log in"

    DEFAULT_CSS = """
    LoginScreen {
        align: center middle;
        #login-card {
            width: 72;
            height: auto;
            padding: 1 3;
            border: round $primary;
            border-title-align: center;
            border-title-style: bold;
            background: $surface;
        }
        #login-intro { color: $text-muted; width: 100%; margin-bottom: 1; }
        #login-form {
            grid-size: 2;
            grid-columns: 18 1fr;
            grid-rows: 3;
            grid-gutter: 0 1;
            height: auto;
        }
        #login-form Label { height: 3; content-align: left middle; width: 100%; }
        #login-form .-hidden { display: none; }
        #login-buttons { height: auto; margin-top: 1; align-horizontal: right; }
        #login-buttons Button { margin-left: 2; }
        #login-status { height: 1; color: $text-muted; width: 100%; }
        #login-status.-error { color: $text-error; }
    }
    """

    BINDINGS = [
        Binding(
            "ctrl+n",
            "toggle_create",
            "New account",
            id="login.toggle-create",
            tooltip="Switch between logging in and creating a new account",
        ),
    ]

    creating: reactive[bool] = reactive(False)
    busy: reactive[bool] = reactive(False)
    #: The last line said under the form, and whether it is a problem.
    _said: tuple[str, bool] = ("", False)

    def compose_body(self) -> ComposeResult:
        with Center():
            with Vertical(id="login-card"):
                yield Static(id="login-intro")
                with Grid(id="login-form"):
                    yield Label("Server", classes="field-label")
                    yield Input(placeholder="wss://host:port", id="server")
                    yield Label("User name", classes="field-label")
                    yield Input(placeholder="your user name", id="username", max_length=64)
                    yield Label("Password", classes="field-label")
                    yield Input(placeholder="password", password=True, id="password")
                    yield Label("Repeat password", classes="field-label -creating -hidden")
                    yield Input(
                        placeholder="the same password again",
                        password=True,
                        id="repeat",
                        classes="-creating -hidden",
                    )
                with Horizontal(id="login-buttons"):
                    yield Button("Create an account instead", id="toggle", variant="default")
                    yield Button("Log in", id="submit", variant="primary")
                yield Static("", id="login-status")

    def on_mount(self) -> None:
        app = self.pixmart
        self.query_one("#server", Input).value = app.server_url or DEFAULT_SERVER
        self.query_one("#username", Input).value = app.store.last_username or ""
        self.query_one("#login-card").border_title = "pixmart"
        self._show_mode()
        said, error = self._said
        self.say(said, error=error)
        if app.server_known:
            self.query_one("#username", Input).focus()
        else:
            self.query_one("#server", Input).focus()

    def on_screen_resume(self) -> None:
        # Coming back after a logout: no password may linger in the form.
        for field in ("#password", "#repeat"):
            self.query_one(field, Input).value = ""
        # A session resumed at start never filled the name; one that ended needs it.
        username = self.query_one("#username", Input)
        if not username.value:
            username.value = self.pixmart.store.last_username or ""
        self.busy = False

    # -- state ---------------------------------------------------------------------------------

    def watch_creating(self) -> None:
        self._show_mode()

    def _show_mode(self) -> None:
        creating = self.creating
        for widget in self.query(".-creating"):
            widget.set_class(not creating, "-hidden")
        self.query_one("#login-intro", Static).update(
            "Create an account: choose a user name and a password of at least "
            f"{MIN_PASSWORD} characters."
            if creating
            else "Log in to a pixmart server. New here? Press ctrl+n to create an account."
        )
        self.query_one("#submit", Button).label = "Create account" if creating else "Log in"
        self.query_one("#toggle", Button).label = (
            "I have an account" if creating else "Create an account instead"
        )
        self.title = "Create account" if creating else "Log in"

    def watch_busy(self, busy: bool) -> None:
        self.query_one("#submit", Button).disabled = busy
        self.query_one("#toggle", Button).disabled = busy

    def say(self, text: str, *, error: bool = False) -> None:
        """Show a progress or problem line under the form."""
        self._said = (text, error)
        # The app's connection worker may speak before the form is composed: on_mount shows it.
        for status in self.query("#login-status").results(Static):
            status.set_class(error, "-error")
            status.update(text)

    # -- input ---------------------------------------------------------------------------------

    def action_toggle_create(self) -> None:
        """Switch between logging in and creating an account."""
        if not self.busy:
            self.creating = not self.creating

    @on(Button.Pressed, "#toggle")
    def _toggle_pressed(self) -> None:
        self.action_toggle_create()

    @on(Input.Submitted, "#server")
    def _server_entered(self) -> None:
        try:
            url = normalise_server_url(self.query_one("#server", Input).value)
        except ValueError as exc:
            self.say(str(exc), error=True)
            return
        self.query_one("#server", Input).value = url
        # Connect now, so a first-contact question comes while the person types the name.
        self.pixmart.connect_in_background(url)
        self.query_one("#username", Input).focus()

    @on(Input.Submitted, "#username")
    def _username_entered(self) -> None:
        if self.query_one("#password", Input).value:
            self._submit()
        else:
            self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _password_entered(self) -> None:
        if self.creating and not self.query_one("#repeat", Input).value:
            self.query_one("#repeat", Input).focus()
        else:
            self._submit()

    @on(Input.Submitted, "#repeat")
    @on(Button.Pressed, "#submit")
    def _submit_pressed(self) -> None:
        self._submit()

    def _submit(self) -> None:
        """Check the form, then log in (or create the account) in the background."""
        if self.busy:
            return
        try:
            url = normalise_server_url(self.query_one("#server", Input).value)
        except ValueError as exc:
            self.say(str(exc), error=True)
            self.query_one("#server", Input).focus()
            return
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username:
            self.say("Enter your user name.", error=True)
            self.query_one("#username", Input).focus()
            return
        if not password:
            self.say("Enter your password.", error=True)
            self.query_one("#password", Input).focus()
            return
        if self.creating:
            if len(password) < MIN_PASSWORD:
                self.say(f"Choose a password of at least {MIN_PASSWORD} characters.", error=True)
                self.query_one("#password", Input).focus()
                return
            if self.query_one("#repeat", Input).value != password:
                self.say("The two passwords differ.", error=True)
                self.query_one("#repeat", Input).focus()
                return
        self.busy = True
        self._log_in(url, username, password, create=self.creating)

    @work(exclusive=True, group="login")
    async def _log_in(self, url: str, username: str, password: str, *, create: bool) -> None:
        app = self.pixmart
        try:
            if not app.link.is_open or app.link.url != url:
                self.say(f"Connecting to {url}…")
            session = await app.link.open(url)
            if create:
                self.say(f"Creating the account {username}…")
                await session.create_account(username, password)
            self.say(f"Logging in as {username}…")
            await session.login(username, password)
        except Exception as exc:  # every failure is told in words, none ends the app
            self.say(app.report_failure(exc), error=True)
            self.query_one("#password", Input).value = ""
            self.query_one("#repeat", Input).value = ""
            self.query_one("#password", Input).focus()
        else:
            self.say("")
            self.creating = False
            self.app.post_message(LoggedIn(session))
        finally:
            self.busy = False


__all__ = ["DEFAULT_SERVER", "LoginScreen"]
