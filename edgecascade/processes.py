"""Child processes of the demo and the benchmarks: started together, never left behind.

Each child gets ``PR_SET_PDEATHSIG`` (Linux) so it is killed if the parent dies without cleaning
up, and :meth:`ProcessGroup.stop_all` stops children in reverse start order: SIGTERM, wait, SIGKILL.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Call it in the child between fork and exec (``preexec_fn``), after any change of user: a
    change of credentials clears the request. Elsewhere, or without libc, it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:
        pass


class ProcessGroup:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._specs: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        logdir.mkdir(parents=True, exist_ok=True)

    def spawn_cli(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``edgecascade <args>`` in this interpreter; output goes to ``<name>.log``."""
        return self.spawn(name, [sys.executable, "-m", "edgecascade", *args], env=env)

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent,
        )
        log.close()
        self._specs[name] = (argv, env)
        self.children = [(n, p) for n, p in self.children if n != name] + [(name, proc)]
        return proc

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The running (or last) process of ``name``."""
        for child, proc in self.children:
            if child == name:
                return proc
        raise KeyError(f"no child process named {name!r}")

    def kill(self, name: str) -> None:
        """SIGKILL ``name``, as a crash or a power cut of its machine would end it."""
        proc = self.process(name)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def respawn(self, name: str, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``name`` again, as a supervisor restarts a service: the same command (or
        ``argv``) and environment; its log continues."""
        old_argv, env = self._specs[name]
        return self.spawn(name, argv or old_argv, env=env)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_logged(self, names: list[str], marker: str, timeout: float) -> None:
        """Until every named child's log contains ``marker`` (e.g. its MQTT session is up);
        raises naming the child that exited or the ones still silent at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            silent = [name for name in names if marker not in _read(self.logdir / f"{name}.log")]
            if not silent:
                return
            for name, proc in self.children:
                if name in silent and proc.poll() is not None:
                    raise EdgeCascadeError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}"
                    )
            if time.monotonic() > deadline:
                raise EdgeCascadeError(
                    f"{', '.join(silent)}: no {marker!r} in the log within {timeout:g} s:\n"
                    + "\n".join(self.log_tail(name) for name in silent)
                )
            time.sleep(0.1)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("pid %d did not stop within %.0fs; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self, timeout: float = 15.0) -> None:
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                logger.debug("stopping %s (pid %d)", name, proc.pid)
                self.stop(proc, timeout)
        self.children.clear()


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables (for the children started inside), then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
