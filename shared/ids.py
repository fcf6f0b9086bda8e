"""Message ids and clocks.

Every message carries a UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort
by creation time and never repeat. Within one millisecond a counter in the random field keeps
ids from one process strictly increasing (RFC 9562, method 1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the Unix epoch; ``time.time`` in production, a plain function in tests."""

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_message_id(clock: Clock = time.time) -> str:
    """A time-ordered unique id (UUIDv7, canonical text form)."""
    global _last_ms, _counter
    with _lock:
        ms = int(clock() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = int.from_bytes(os.urandom(2), "big") >> 5
        else:
            _counter = int.from_bytes(os.urandom(2), "big") >> 5  # leave headroom to count up
        _last_ms = ms
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76 | (_counter & 0xFFF) << 64
        value |= 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def message_id_time(message_id: str) -> float:
    """The creation time (Unix seconds) encoded in a UUIDv7 message id."""
    return (uuid.UUID(message_id).int >> 80) / 1000.0
