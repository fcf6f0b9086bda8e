"""Throwaway PostgreSQL for the tests and the benchmarks: a private cluster, scratch databases.

:class:`PostgresServer` runs its own cluster (own port, data and socket directory, no fsync) from
the server binaries of Debian's ``postgresql`` package, so nothing touches a shared server. As
root, the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root). When no
server binaries are installed, :func:`find_server_binaries` returns None and the caller falls back
to a server it was given (``EC_TEST_PG_URL`` in the tests, ``--postgres-url`` in the benchmarks).

:func:`scratch_database` creates a fresh database on any server and drops it afterwards. SQLAlchemy
comes with the cloud extra, so it is imported inside the function: importing this module is cheap.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgecascade.brokers import free_port


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
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the cluster (if it runs) and delete its files."""
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
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
