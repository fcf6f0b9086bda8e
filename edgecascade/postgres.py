"""Throwaway PostgreSQL for the tests and the benchmarks: a private cluster, scratch databases.

:class:`PostgresServer` runs its own cluster (own port, data and socket directory, no fsync) from
the server binaries of Debian's ``postgresql`` package, so nothing touches a shared server. As
root, the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root). The server
is a child process that dies with its parent, even one killed with SIGKILL (its files are then
left in the temporary directory). When no
server binaries are installed, :func:`find_server_binaries` returns None and the caller falls back
to a server it was given (``EC_TEST_PG_URL`` in the tests, ``--postgres-url`` in the benchmarks).

:func:`scratch_database` creates a fresh database on any server and drops it afterwards. SQLAlchemy
comes with the cloud extra, so it is imported inside the function: importing this module is cheap.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgecascade.brokers import free_port
from edgecascade.processes import die_with_parent
from edgecascade.shared.errors import EdgeCascadeError

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def find_server_binaries() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A private cluster on a free port; :meth:`start` returns the URL of its ``postgres`` DB."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ec-pg-"))
        self.datadir = self.root / "data"
        self._as_root = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> str:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        with (self.root / "server.log").open("ab") as log:
            # The postmaster is our child, not a daemon of pg_ctl's: it gets a parent-death
            # signal, so a test run or a benchmark killed with SIGKILL leaves no server behind.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._become_server,
            )
        self._wait_ready(STARTUP_TIMEOUT_S)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _become_server(self) -> None:  # in the child, between fork and exec
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        die_with_parent(signal.SIGQUIT)  # after the change of user, which would clear it

    def _wait_ready(self, timeout: float) -> None:
        """Until the postmaster says ``ready`` in its pid file, as ``pg_ctl -w`` waits."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        pidfile = self.datadir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EdgeCascadeError(
                    f"PostgreSQL exited with {self._proc.returncode} on start:\n{self._log_tail()}"
                )
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        raise EdgeCascadeError(
            f"PostgreSQL not ready within {timeout:.0f}s on port {self.port}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (immediate shutdown: a throwaway cluster) and delete its files."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGQUIT)
                try:
                    self._proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database ``<prefix><random>`` on the server of ``server_url``, dropped on exit.

    ``server_url`` may name any database the user can connect to; the yielded URL is the same
    with the new database in its place. Connections still open at the end are terminated.
    """
    from sqlalchemy import create_engine, make_url

    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
