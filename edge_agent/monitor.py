"""The agent's local monitoring log and ``edgecascade agent report``.

Each telemetry message the agent publishes is also appended, as one JSON line of its monitoring
fields, to ``<data_dir>/monitor.jsonl``: someone at the device (or a script over SSH, or a support
bundle) can see how it ran without the broker or the cloud. The file is rotated at
``MAX_BYTES`` into ``monitor.jsonl.1`` (one generation), so it never grows past twice that.

``edgecascade agent report`` turns the log into the JSON monitoring report: the device, when the
report was made, every sample (timestamped, CPU, memory, disk, temperature, inference count, mean
latency...) and min/mean/max of each figure over them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgecascade.shared.messages import TelemetryMessage

logger = logging.getLogger(__name__)

MAX_BYTES = 1 << 20
# The figures of a sample, in the report's order: name in the report <- telemetry field.
FIGURES = {
    "cpu_percent": "cpu_percent",
    "memory_percent": "memory_percent",
    "memory_rss_mb": "memory_rss_mb",
    "disk_percent": "disk_percent",
    "temperature_c": "temperature_c",
    "fps": "fps",
    "frames": "frames",
    "inference_count": "inferences",
    "mean_latency_ms": "latency_mean_ms",
    "uptime_s": "uptime_s",
    "agent_uptime_s": "agent_uptime_s",
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class MonitorLog:
    """Appends samples to ``monitor.jsonl`` in ``directory``; never raises into the agent."""

    def __init__(self, directory: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = directory / "monitor.jsonl"
        self.max_bytes = max_bytes
        self.failures = 0

    def append(self, message: TelemetryMessage) -> None:
        sample: dict[str, Any] = {"timestamp": iso(message.ts), "ts": message.ts}
        sample.update({name: getattr(message, field) for name, field in FIGURES.items()})
        line = json.dumps(sample, separators=(",", ":")) + "\n"
        try:
            if self.path.exists() and self.path.stat().st_size + len(line) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            with self.path.open("a") as fh:
                fh.write(line)
        except OSError as exc:  # a full disk must not stop the camera; counted, logged once
            self.failures += 1
            if self.failures == 1:
                logger.warning("monitoring log %s not written: %s", self.path, exc)


def read_samples(directory: Path) -> Iterator[dict[str, Any]]:
    """The samples of both generations, oldest first; a torn last line (power cut) skipped."""
    path = directory / "monitor.jsonl"
    for part in (path.with_name(path.name + ".1"), path):
        if not part.exists():
            continue
        for number, line in enumerate(part.read_text(errors="replace").splitlines(), 1):
            try:
                sample = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: not a JSON sample, skipped", part, number)
                continue
            if isinstance(sample, dict):
                yield sample


def build_report(
    samples: list[dict[str, Any]], site: str, device: str, now: float | None = None
) -> dict[str, Any]:
    """The monitoring report: the samples and min/mean/max of every figure over them."""
    summary: dict[str, dict[str, float]] = {}
    for name in FIGURES:
        values = [float(s[name]) for s in samples if isinstance(s.get(name), int | float)]
        if values:
            summary[name] = {
                "min": min(values),
                "mean": round(sum(values) / len(values), 3),
                "max": max(values),
            }
    return {
        "site": site,
        "device": device,
        "generated_at": iso(time.time() if now is None else now),
        "first_sample": samples[0]["timestamp"] if samples else None,
        "last_sample": samples[-1]["timestamp"] if samples else None,
        "sample_count": len(samples),
        "samples": samples,
        "summary": summary,
    }


def render(report: dict[str, Any]) -> str:
    """The report as a readable table: each figure's min, mean, max and last value."""
    lines = [
        f"agent {report['site']}/{report['device']}: {report['sample_count']} samples, "
        f"{report['first_sample']} .. {report['last_sample']}",
        f"{'figure':<18} {'min':>10} {'mean':>10} {'max':>10} {'last':>10}",
    ]
    last = report["samples"][-1] if report["samples"] else {}
    for name, stats in report["summary"].items():
        lines.append(
            f"{name:<18} {stats['min']:>10.2f} {stats['mean']:>10.2f} {stats['max']:>10.2f} "
            f"{float(last.get(name) or 0):>10.2f}"
        )
    return "\n".join(lines)
