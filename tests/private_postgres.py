"""A PostgreSQL server of the test's own, which it may restart or stop at will.

The chaos suite restarts PostgreSQL in the middle of traffic; doing that to the machine's shared server
would break every other test (and every other program) using it. This one lives in a temporary folder,
listens on a free loopback port, trusts local connections, and is gone when the test is done. (The
folder is made in the system's temporary directory: the server runs as `postgres` when the tests run as
root, and must reach it.)

    with PrivatePostgres() as pg:
        url = pg.url                     # postgresql+psycopg://postgres@127.0.0.1:<port>/postgres
        pg.restart()                     # a fast shutdown and a start: every connection drops
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from whatsagent.testing import free_port


def _bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def available() -> str | None:
    """None when a private server can be started here, else why not."""
    if _bindir() is None:
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run the server as"
    return None


class PrivatePostgres:
    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="whatsagent-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        bindir = _bindir()
        assert bindir is not None, available()
        self.bindir = bindir

    def _run(self, *command: str) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        data = self.directory / "data"
        if not data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres", "postgres")
                os.chmod(self.directory, 0o700)
            self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._ctl("start")

    def _ctl(self, action: str) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "-t",
            "120",
            action,
            *(["-m", "fast"] if action in ("stop", "restart") else []),
        )

    def restart(self) -> None:
        """A fast shutdown (every session ends, transactions roll back) and a start."""
        self._ctl("restart")

    def stop(self) -> None:
        self._ctl("stop")

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
