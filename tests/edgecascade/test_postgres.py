"""The private PostgreSQL of the tests and benchmarks never outlives the process that started it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from edgecascade.postgres import PostgresServer, find_server_binaries
from tests.utils.mqtt import wait_until

pytestmark = pytest.mark.skipif(
    find_server_binaries() is None, reason="no PostgreSQL server binaries (initdb) installed"
)

# A parent that starts a private server, says where it is, then waits to be killed.
PARENT = """
import sys, time
from edgecascade.postgres import PostgresServer, find_server_binaries
server = PostgresServer(find_server_binaries())
server.start()
print(server.port, server._proc.pid, server.root, flush=True)
time.sleep(600)  # until the test kills it
"""


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_a_server_stops_with_its_parent_even_one_killed_with_sigkill() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    ) as parent:
        root = ""
        try:
            assert parent.stdout is not None
            port_, pid_, root = parent.stdout.readline().split()
            port, pid = int(port_), int(pid_)
            assert _accepts(port) and _alive(pid)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            wait_until(lambda: not _alive(pid) and not _accepts(port), timeout=30, step=0.1)
            assert not _alive(pid), f"postmaster {pid} outlived its SIGKILLed parent"
            assert not _accepts(port)
        finally:
            if parent.poll() is None:
                parent.kill()
            if root:
                shutil.rmtree(root, ignore_errors=True)  # left behind by the killed parent


def test_stop_ends_the_server_and_removes_its_files() -> None:
    server = PostgresServer(find_server_binaries())  # type: ignore[arg-type]
    server.start()
    assert _accepts(server.port)
    server.stop()
    assert not _accepts(server.port)
    assert not server.root.exists()
