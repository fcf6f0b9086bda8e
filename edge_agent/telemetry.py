"""Telemetry helpers: rolling per-stage latencies and the device temperature."""

from __future__ import annotations

import threading
from collections import deque

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
