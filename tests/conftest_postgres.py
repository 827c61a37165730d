"""The real PostgreSQL for the tests that need one: a fresh database per test, dropped afterwards.

The server comes from ``WHATSAGENT_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). When it cannot be reached the PostgreSQL tests
are skipped with the reason shown, unless ``WHATSAGENT_REQUIRE_POSTGRES=1`` (CI sets it): then they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE_PREFIX = "whatsagent_test_"
_numbers = itertools.count(1)
_skipped_because: list[str] = []


def _required() -> bool:
    return os.environ.get("WHATSAGENT_REQUIRE_POSTGRES", "").strip() in ("1", "true", "yes")


def _candidates() -> list[str]:
    configured = os.environ.get("WHATSAGENT_TEST_POSTGRES_URL")
    if configured:
        return [configured]
    # Trust authentication as the `postgres` role, or as `root` where that is the local superuser.
    return [DEFAULT_URL, DEFAULT_URL.replace("postgres@", "root@")]


def _connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    from whatsagent.queue.procrastinate import conninfo

    return psycopg.connect(conninfo(url), autocommit=True, connect_timeout=3)


def _drop_leftovers(conn) -> None:  # type: ignore[no-untyped-def]
    """Databases of earlier runs that died before cleaning up (their process is gone)."""
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DATABASE_PREFIX + "%",)).fetchall()
    for (name,) in rows:
        try:
            pid = int(name[len(DATABASE_PREFIX) :].split("_")[0])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a reachable PostgreSQL server; skips (or fails, in CI) the test otherwise."""
    errors = []
    for url in _candidates():
        try:
            with _connect(url) as conn:
                _drop_leftovers(conn)
            return url
        except Exception as exc:
            errors.append(f"{url.split('@')[-1]}: {str(exc).strip().splitlines()[0]}")
    reason = "PostgreSQL is unreachable (" + "; ".join(errors) + "); set WHATSAGENT_TEST_POSTGRES_URL"
    if _required():
        pytest.fail(reason + " — WHATSAGENT_REQUIRE_POSTGRES=1 makes this a failure", pytrace=False)
    _skipped_because.append(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards), as a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    name = f"{DATABASE_PREFIX}{os.getpid()}_{next(_numbers)}"
    with _connect(postgres_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with _connect(postgres_server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Say once, at the end of every run, that the PostgreSQL tests did not run and why."""
    if _skipped_because:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {_skipped_because[0]}", yellow=True, bold=True)
