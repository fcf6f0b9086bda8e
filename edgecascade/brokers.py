"""Private Mosquitto brokers as child processes: own port, config and persistence directory.

Used by ``edgecascade demo`` and the benchmarks to run the whole topology on one machine, and by the
tests, which stop, kill and restart brokers to inject faults. Needs the ``mosquitto`` binary
(Debian/Ubuntu package ``mosquitto``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from edgecascade.processes import die_with_parent
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import BrokerError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoBroker:
    """A Mosquitto child process that can be stopped, killed and restarted on the same port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        *,
        config: str | None = None,
    ) -> None:
        """``config``, when given, replaces the private default configuration (it must open a
        listener on ``port``); the log still goes to ``workdir``."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise BrokerError("mosquitto is not installed: sudo apt-get install mosquitto")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        # As root, Mosquitto drops to the 'mosquitto' user, which cannot write our private
        # directories: stay root so persistence and the log work.
        user = "user root\n" if os.geteuid() == 0 else ""
        log = (
            f"log_dest file {workdir}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        default = (
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
            "max_queued_bytes 268435456\n"
            "max_inflight_messages 0\n"
            "message_size_limit 8388608\n"
            f"{extra_conf}\n"
        )
        self.conf.write_text(f"{default if config is None else config}\n{user}{log}")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def settings(self) -> MqttSettings:
        return MqttSettings(host="127.0.0.1", port=self.port, reconnect_min=0.2, reconnect_max=1.0)

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a killed test run or benchmark leaves no broker behind
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.workdir / "mosquitto.log").read_text(errors="replace")[-2000:]
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise BrokerError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        """Clean shutdown: the broker writes its persistence file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: whatever was not autosaved is lost, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
