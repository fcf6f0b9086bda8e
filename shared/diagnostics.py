"""Remote diagnostics (``cmd/diagnostics``): the last log lines, the settings in force with
secrets hidden, and an outbox summary, as agents and gateways answer them.

:class:`LogRing` is a logging handler that keeps the newest lines in memory (a bounded deque: no
disk, no growth); :func:`install_log_ring` puts one on the root logger once per process.
:func:`redact` walks a settings dump and hides every value whose key names a secret (passwords,
keys, tokens) and the user:password part of URLs, so the answer can be shown in a dashboard.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from edgecascade.shared.outbox import Outbox

REDACTED = "<redacted>"
SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|(^|_)key(_file)?$)", re.I)
URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.I)
DEFAULT_LINES = 200
MAX_LINES = 2000
LINE_LIMIT = 1000  # characters kept of one log line (a traceback is cut, not the answer)


class LogRing(logging.Handler):
    """The newest ``capacity`` formatted log records of this process."""

    def __init__(self, capacity: int = MAX_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # A NUL (from hostile input that was logged) would make the whole answer invalid:
            # the contract refuses NUL in every text, so it is kept visible as an escape.
            line = self.format(record).replace("\x00", "\\x00")
            self.lines.append(line[:LINE_LIMIT])
        except Exception:  # a record that does not format must not break the caller
            self.handleError(record)

    def tail(self, n: int) -> list[str]:
        """The newest ``n`` lines, oldest first."""
        lines = list(self.lines)
        return lines[-n:] if n > 0 else []


_ring: LogRing | None = None
_ring_lock = threading.Lock()


def install_log_ring() -> LogRing:
    """The process's ring, added to the root logger on first call (at INFO: what the
    component logs anyway)."""
    global _ring
    with _ring_lock:
        if _ring is None:
            _ring = LogRing()
            _ring.setLevel(logging.INFO)
            logging.getLogger().addHandler(_ring)
        return _ring


def redact(value: Any, key: str = "") -> Any:
    """``value`` (a JSON-able dump) with secrets replaced by :data:`REDACTED`."""
    if key and SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return URL_USERINFO.sub(rf"\1{REDACTED}@", value)
    return value


def effective_settings(settings: BaseModel) -> dict[str, Any]:
    """The settings in force as JSON, secrets hidden."""
    dumped: dict[str, Any] = redact(settings.model_dump(mode="json"))
    return dumped


def outbox_summary(outbox: Outbox) -> dict[str, Any]:
    """Messages waiting per class and the outbox's counters (sent, expired, dropped...)."""
    depth = outbox.depth()
    return {"depth": depth, "total": sum(depth.values()), "counters": outbox.counters()}


def lines_asked(args: Mapping[str, Any]) -> int:
    """How many log lines a diagnostics command asks for (``lines``), checked."""
    n = args.get("lines", DEFAULT_LINES)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_LINES:
        raise ValueError(f"lines must be an integer 0..{MAX_LINES}, got {n!r}")
    return n
