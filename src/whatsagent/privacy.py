"""What never appears in logs in full: users' phone numbers, tokens and database passwords; and no
value a sender chooses makes a log line long.

`install_private_logs` (called when an `AgentOS` starts) puts `PrivateLogs` on whatsagent's loggers,
uvicorn's (its access log names operator routes with numbers in their paths, and Meta's verification
request carries ``hub.verify_token``) and procrastinate's: phone numbers keep their last four digits,
token values become ``***``, and any one value is cut to `LOG_VALUE_MAX` characters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from whatsagent.store import sqlite_file

LOG_VALUE_MAX = 300
"""Characters of a sender-chosen value (an id, a reason quoting one) kept in a log line or a reply."""

LOG_ARGUMENT_MAX = 2000
"""Characters of any one argument of a log record (a whole exception text included)."""

# A phone number: 8 to 15 digits (E.164, with or without the +), not inside a longer word or number,
# and not the business's own account id before the "|" of a conversation key (channel:account|user).
_NUMBER = re.compile(r"(?<![\w.-])(\+?)(\d{4,11})(\d{4})(?![\w|])")
# Credentials in query strings, headers and URLs.
_SECRET = re.compile(
    r"((?:hub\.verify_token|verify_token|access_token|token|signature|api_key|key)=)[^&\s'\"]+|"
    r"(Bearer\s+)[^\s'\"]+|(Basic\s+)[^\s'\"]+",
    re.IGNORECASE,
)

LOGGERS = ("whatsagent", "uvicorn", "uvicorn.access", "uvicorn.error", "procrastinate", "fastapi")


def masked(conversation: str) -> str:
    """A conversation key (``channel|wa_id``) with only the user's last four digits."""
    channel, _, user = conversation.rpartition("|")
    return f"{channel}|…{user[-4:]}" if user else conversation


def redacted(url: str) -> str:
    """A database URL without its credentials."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def shorten(text: str, limit: int = LOG_VALUE_MAX) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def scrubbed(text: str, limit: int = LOG_ARGUMENT_MAX) -> str:
    """`text` with phone numbers reduced to their last four digits, credentials to ``***``, and cut to
    `limit` characters."""
    text = _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", text)
    text = _NUMBER.sub(lambda m: f"{m.group(1)}…{m.group(3)}", text)
    return shorten(text, limit)


class PrivateLogs(logging.Filter):
    """Scrubs every string in a record (its message and each argument) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrubbed(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrubbed(a) if isinstance(a, str) else _scrub_other(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: scrubbed(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def _scrub_other(value: object) -> object:
    # Exceptions and other objects are formatted with %s/%r: scrub their text, keep numbers as numbers.
    if isinstance(value, BaseException):
        return scrubbed(repr(value))
    return value


_FILTER = PrivateLogs()


def install_private_logs() -> None:
    """Put `PrivateLogs` on whatsagent's, uvicorn's and procrastinate's loggers (every one created so far,
    as modules create theirs when imported). Idempotent."""
    names = [name for name in logging.Logger.manager.loggerDict if name.startswith(LOGGERS)]
    for name in {*LOGGERS, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def protect_sqlite(database_url: str) -> None:
    """Make an SQLite database readable by this user only, whatever the umask: its directory's new
    files, the database (created empty if absent: SQLite gives its ``-wal`` and ``-shm`` files the
    database's mode) and the lock file are 0600. Other URLs are left alone."""
    if os.name != "posix" or not database_url.startswith("sqlite") or "///" not in database_url:
        return
    path = sqlite_file(database_url)
    if not path or path == ":memory:":
        return
    database = Path(path)
    database.parent.mkdir(parents=True, exist_ok=True)
    for name in (database.name, database.name + ".lock"):
        file = database.with_name(name)
        fd = os.open(file, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        with contextlib.suppress(PermissionError):
            file.chmod(0o600)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            database.with_name(database.name + suffix).chmod(0o600)
