from __future__ import annotations

import os
import socket
from pathlib import Path

from edgecascade.shared.systemd import Notifier


def test_notifications_reach_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        assert notifier.active and notifier.watchdog_interval == 1.0
        notifier.ready("serving")
        notifier.watchdog()
        notifier.watchdog()  # rate-limited: not sent again at once
        notifier.stopping()
        received = [server.recv(256).decode() for _ in range(3)]
    assert received == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "STOPPING=1"]


def test_watchdog_for_another_pid_is_ignored(tmp_path: Path) -> None:
    notifier = Notifier(
        {"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert os.getpid() != 1
    assert notifier.watchdog_interval is None


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.active
    assert not notifier.notify("READY=1")
    notifier.watchdog()
