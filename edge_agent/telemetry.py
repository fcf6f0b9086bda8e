"""Telemetry helpers: rolling per-stage latencies, the device temperature, disk and uptime."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import psutil

from edgecascade.shared.messages import Percentiles


class StageTimer:
    """Rolling per-stage latencies for telemetry percentiles; the pipeline's threads all add."""

    def __init__(self, window: int = 1000) -> None:
        self._samples: dict[str, deque[float]] = {}
        self._window = window
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self._window)).append(ms)

    def mean(self, stage: str) -> float | None:
        """The mean of ``stage`` over the window, None before its first sample."""
        with self._lock:
            values = list(self._samples.get(stage, ()))
        return sum(values) / len(values) if values else None

    def percentiles(self) -> dict[str, Percentiles]:
        import numpy as np

        out = {}
        with self._lock:
            samples = {stage: list(values) for stage, values in self._samples.items()}
        for stage, values in samples.items():
            if values:
                p50, p95, p99 = np.percentile(np.asarray(values, dtype=float), [50, 95, 99])
                out[stage] = Percentiles(p50=float(p50), p95=float(p95), p99=float(p99))
        return out


def read_temperature() -> float | None:
    """The CPU temperature from the first thermal zone, or None where there is none."""
    try:
        temps = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    for entries in temps.values():
        for entry in entries:
            return float(entry.current)
    return None


def uptime_s() -> float | None:
    """Seconds since boot: CLOCK_BOOTTIME (Linux: counts suspend, immune to wall-clock jumps),
    else from psutil's boot time."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        try:
            return max(0.0, time.time() - psutil.boot_time())
        except OSError:
            return None


def disk_percent(path: Path) -> float | None:
    """How full the filesystem holding ``path`` is, or None when it cannot be read."""
    try:
        return float(psutil.disk_usage(str(path)).percent)
    except OSError:
        return None
