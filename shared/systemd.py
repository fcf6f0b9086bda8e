"""systemd service notifications (``sd_notify``) without a dependency.

Under a ``Type=notify`` unit systemd passes a datagram socket in ``NOTIFY_SOCKET``; a component
sends ``READY=1`` once it serves, ``WATCHDOG=1`` at least every half ``WatchdogSec`` while its main
loop is healthy (systemd restarts it otherwise) and ``STOPPING=1`` when it begins to shut down.
Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self._address = address or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 1e6 / 2 if enabled else None
        self._last_ping = 0.0

    @property
    def active(self) -> bool:
        return self._address is not None

    def notify(self, state: str) -> bool:
        """Send one notification (e.g. ``READY=1``); False outside systemd or on failure."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(state.encode())
        except OSError as exc:
            logger.warning("sd_notify %s failed: %s", state.split("=")[0], exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog, at most every half ``WatchdogSec``; call it from the main loop."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval / 2:
            self._last_ping = now
            self.notify("WATCHDOG=1")
