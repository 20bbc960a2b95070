"""Provides the server's logging set-up: human text lines, or one JSON object per line.

Both formats go to standard error through the standard :mod:`logging` module. The dispatcher
writes one line per request on :data:`REQUEST_LOGGER` and passes its fields (request id, user
id, connection, client address, type, outcome, duration) as ``extra``: the JSON format emits them
as fields of their own, and the text format reads them in the message.

No level, ``-v`` included, lets payloads or secrets through: the debug output of the libraries in
:data:`QUIET_LOGGERS` is never written (see there for what it would print).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final, Literal, TextIO, get_args

#: The logger of the one-line-per-request log.
REQUEST_LOGGER: Final = "pixmart.requests"

#: The format of ``--log-format text`` (what the server always wrote).
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)

#: Libraries whose debug output carries secrets, so they log at INFO whatever the verbosity:
#: websockets prints the first 16 and last 8 bytes of every frame (the tail of a password or a
#: session token, a short password whole) and aiosqlite every statement with its parameters
#: (password hashes, token hashes).
QUIET_LOGGERS: Final = ("websockets", "aiosqlite")

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Marks the handler configure_logging installed, so a second call replaces only that one.
_OWN_HANDLER: Final = "_pixmart_handler"


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message and the extra fields.

    The fixed keys win over extra fields of the same name; values JSON cannot hold are written
    as their ``str``. Newlines inside a message are escaped, so a record is always one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class SecretsFilter(logging.Filter):
    """Drops debug records of the :data:`QUIET_LOGGERS`, whatever their loggers' levels.

    The levels :func:`configure_logging` sets keep these records from being made at all; this
    filter on the handler keeps them out even if something lowers a library's level again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` may be written."""
        if record.levelno >= logging.INFO:
            return True
        return record.name.partition(".")[0] not in QUIET_LOGGERS


def configure_logging(*, verbose: bool, fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at INFO (DEBUG if ``verbose``) and above to ``stream``.

    Replaces the handler an earlier call installed; leaves other handlers alone. The
    :data:`QUIET_LOGGERS` stay at INFO even when ``verbose``.

    Args:
        verbose: Log at DEBUG instead of INFO.
        fmt: ``"text"`` or ``"json"`` (see :data:`LOG_FORMATS`).
        stream: Where to write; standard error by default.

    Returns:
        The handler installed on the root logger (tests remove it again).

    Raises:
        ValueError: ``fmt`` is not a known format.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretsFilter())
    setattr(handler, _OWN_HANDLER, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Neither format writes where a record was made nor its thread or process, and the request
    # log makes one record per request: skip looking them up (the logging HOWTO's
    # "Optimization"; a stack walk per record was a tenth of a listing batch's CPU).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in QUIET_LOGGERS:
        # At INFO websockets does not even format its frame dumps (it checks the level once per
        # connection), so this also spares -v the cost of them.
        logging.getLogger(name).setLevel(logging.INFO)
    return handler
