"""Per-device rate limits at the gateway: token buckets for messages and bytes, per kind class.

A noisy or compromised device must get no more than its budget through the gateway: every device
message is checked here after its topic is parsed and before it is decoded, validated or
committed, so a refused message costs the gateway receiving and acknowledging it and a lookup. A
message over its device's budget is acknowledged and never forwarded (the device's outbox had its
PUBACK from the broker anyway, so it does not send it again); the gateway counts it per device and
class and dead-letters the first excess message of each device and class per
``dead_letter_interval_s`` (a flood must not become a flood of dead letters), the dead letter
saying how many were counted since the last one.

Each device has, per class (``result``, ``escalation``, ``telemetry``, ``other``), a message
bucket and a byte bucket (:class:`TokenBucket`); a message passes only if both hold enough.

Backlogs: a device (or the site broker, for the gateway) that was cut off keeps its messages and
sends them when it is back, faster than it produces them. So a device heard again after a silence
of at least ``absence_s`` (nothing of any kind from it, which is also what a site-broker outage
looks like) is credited, on every bucket, its rate times the silence (at most ``catch_up_s``) on
top of the burst: what it may owe is what it was allowed to produce meanwhile. After a restart the
gateway credits every device it hears the time the gateway was away. In all, a device gets at most
its burst plus its rate times the time since it was first heard (and the gateway's time away): a
silent device keeps its unused budget for up to ``catch_up_s``, the price of letting a real
backlog through.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgecascade.shared.topics import Kind

if TYPE_CHECKING:  # the settings check their bursts against this module's classes
    from edgecascade.gateway.settings import KindLimit, RateLimitSettings

Clock = Callable[[], float]

CLASSES: dict[Kind, str] = {
    Kind.RESULT: "result",
    Kind.ESCALATION: "escalation",
    Kind.TELEMETRY: "telemetry",
}
OTHER = "other"  # state, model acks and chunk requests, replies
CLASS_NAMES = (*CLASSES.values(), OTHER)
# Devices tracked at once. On a deployed broker a device publishes only under its own id; on an
# open one anyone can make up ids, and each costs a few hundred bytes here: past this many the
# longest-known is forgotten with its counts (it starts again with a full burst and no credit).
MAX_DEVICES = 65_536
TOP_COUNTED = 100  # devices named in the gateway's telemetry (the most refused first)


def class_of(kind: Kind) -> str:
    """The rate-limit class of a device message kind."""
    return CLASSES.get(kind, OTHER)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``rate`` 0 is unlimited.

    Credit for an absence (:meth:`credit`) may lift the level above ``burst``: it is spent
    first and never refilled; the bucket refills only while it is below ``burst``.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate < 0 or burst <= 0:
            raise ValueError(f"a token bucket needs rate >= 0 and burst > 0, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.level = burst
        self._last = now

    @property
    def unlimited(self) -> bool:
        return self.rate == 0

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed <= 0:  # a monotonic clock does not go back; equal readings add nothing
            return
        self._last = now
        if self.level < self.burst:
            self.level = min(self.burst, self.level + self.rate * elapsed)

    def holds(self, amount: float, now: float) -> bool:
        """Whether ``amount`` tokens are there now (taking nothing)."""
        if self.unlimited:
            return True
        self._refill(now)
        return self.level >= amount

    def take(self, amount: float) -> None:
        """Take ``amount`` after :meth:`holds` said they are there."""
        if not self.unlimited:
            self.level -= amount

    def credit(self, seconds: float, now: float) -> None:
        """After a silence: ``seconds`` of the rate on top of what the bucket held, even above
        the burst, in place of (not besides) the refill since: over any span the bucket gains at
        most its rate times the span, however silences and bursts alternate."""
        before = self.level
        self._refill(now)
        self.level = max(self.level, before + self.rate * seconds)


@dataclass(slots=True)
class _Class:
    messages: TokenBucket
    bytes: TokenBucket
    limit: KindLimit
    excess: int = 0  # counted since the last dead letter
    next_letter: float = 0.0  # the next excess message dead-lettered, monotonic


@dataclass(frozen=True, slots=True)
class Excess:
    """A message over its device's budget; ``reason`` is set for the one to dead-letter."""

    klass: str
    reason: str | None


class _Device:
    def __init__(self, settings: RateLimitSettings, device: str, heard: float, now: float) -> None:
        self.heard = heard
        self.classes: dict[str, _Class] = {}
        for name in CLASS_NAMES:
            limit = settings.limit(device, name)
            self.classes[name] = _Class(
                TokenBucket(limit.messages_per_s, limit.burst_messages, now),
                TokenBucket(limit.bytes_per_s, limit.burst_bytes, now),
                limit,
            )


class RateLimiter:
    """Every device's buckets; :meth:`check` is called for each device message, by one thread
    (the site link's), and :meth:`counts` may be read from any."""

    def __init__(
        self, settings: RateLimitSettings, *, absent_for: float = 0.0, clock: Clock = time.monotonic
    ) -> None:
        """``absent_for``: seconds the gateway itself was away before this start. A device this
        process has not heard yet is treated as last heard that long before its first message:
        its backlog in the site broker is credited, and nothing more (not the time since the
        start: a device switched on a week after it would otherwise bring a week's credit)."""
        self.settings = settings
        self._clock = clock
        self._absent_for = max(0.0, absent_for)
        self._devices: dict[str, _Device] = {}
        self._limited: Counter[str] = Counter()
        self._total = 0
        self._lock = threading.Lock()

    def check(self, device: str, kind: Kind, size: int) -> Excess | None:
        """None if ``device`` may send this ``size``-byte message of ``kind`` (and charge it)."""
        now = self._clock()
        state = self._devices.get(device)
        if state is None:
            if len(self._devices) >= MAX_DEVICES:
                self._forget(next(iter(self._devices)))
            state = _Device(self.settings, device, now - self._absent_for, now)
            self._devices[device] = state
        absent = now - state.heard
        state.heard = now
        if absent >= self.settings.absence_s:
            owed = min(absent, self.settings.catch_up_s)
            for klass in state.classes.values():
                klass.messages.credit(owed, now)
                klass.bytes.credit(owed, now)
        name = class_of(kind)
        klass = state.classes[name]
        if klass.messages.holds(1, now) and klass.bytes.holds(size, now):
            klass.messages.take(1)
            klass.bytes.take(size)
            return None
        with self._lock:
            self._limited[f"{device}.{name}"] += 1
            self._total += 1
        klass.excess += 1
        if now < klass.next_letter:
            return Excess(name, None)
        klass.next_letter = now + self.settings.dead_letter_interval_s
        reason = _reason(device, name, klass, size)
        klass.excess = 0
        return Excess(name, reason)

    def _forget(self, device: str) -> None:
        """Drop a device's buckets and its per-class counts (:meth:`total` keeps them)."""
        del self._devices[device]
        with self._lock:
            for name in CLASS_NAMES:
                self._limited.pop(f"{device}.{name}", None)

    def counts(self, top: int | None = None) -> dict[str, int]:
        """Messages refused per ``<device>.<class>`` of the devices tracked; with ``top``, only that
        many, the largest (the gateway's telemetry must stay within its size limit)."""
        with self._lock:
            if top is None:
                return dict(self._limited)
            return dict(self._limited.most_common(top))

    def total(self) -> int:
        """Messages refused since the start."""
        with self._lock:
            return self._total


def _reason(device: str, name: str, klass: _Class, size: int) -> str:
    limit = klass.limit
    over = "messages" if klass.messages.level < 1 else "bytes"
    if over == "messages":
        budget = f"{limit.messages_per_s:g} messages/s (burst {limit.burst_messages})"
    else:
        budget = f"{limit.bytes_per_s:g} bytes/s (burst {limit.burst_bytes}; this one {size})"
    return (
        f"rate limit: device {device!r} exceeded its {name} limit of {budget}; "
        f"{klass.excess} {name} message(s) refused since the last such dead letter, this one "
        "included (one is dead-lettered per interval, the rest only counted)"
    )


def absent_for(mark: Path, now: float | None = None) -> float:
    """Seconds since the last :func:`mark_alive` on ``mark`` (0 if it was never marked, or the
    clock is behind it): how long a restarting gateway was away from its devices."""
    try:
        last = mark.stat().st_mtime
    except FileNotFoundError:
        return 0.0
    return max(0.0, (time.time() if now is None else now) - last)


def mark_alive(mark: Path) -> None:
    """Record that the gateway is running now (the file's modification time)."""
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
