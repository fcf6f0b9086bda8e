"""The agent's monitoring log and ``edgecascade agent report``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecascade.edge_agent.monitor import MonitorLog, build_report, read_samples, render
from edgecascade.shared.messages import TelemetryMessage
from tests.utils.paths import REPO


def sample(ts: float, cpu: float, inferences: int) -> TelemetryMessage:
    return TelemetryMessage(
        ts=ts,
        cpu_percent=cpu,
        memory_percent=40.0,
        memory_rss_mb=50.0,
        fps=5.0,
        frames=inferences,
        disk_percent=12.5,
        uptime_s=1000.0 + ts,
        agent_uptime_s=ts,
        inferences=inferences,
        latency_mean_ms=2.0,
    )


def test_samples_are_kept_rotated_and_read_back_oldest_first(tmp_path: Path) -> None:
    log = MonitorLog(tmp_path, max_bytes=1000)
    for i in range(20):
        log.append(sample(1_800_000_000 + i, cpu=float(i), inferences=i))
    assert (tmp_path / "monitor.jsonl.1").exists()  # rotated once past 1000 bytes
    assert (tmp_path / "monitor.jsonl").stat().st_size <= 1000
    samples = list(read_samples(tmp_path))
    counts = [s["inference_count"] for s in samples]
    assert counts == sorted(counts) and counts[-1] == 19 and len(counts) < 20  # oldest dropped
    assert samples[-1]["timestamp"] == "2027-01-15T08:00:19Z"


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    MonitorLog(tmp_path).append(sample(1_800_000_000, 1.0, 1))
    with (tmp_path / "monitor.jsonl").open("a") as fh:
        fh.write('{"timestamp": "2027-01')  # the power went out mid-write
    assert len(list(read_samples(tmp_path))) == 1


def test_a_log_that_cannot_be_written_is_counted_not_raised(tmp_path: Path) -> None:
    (tmp_path / "monitor.jsonl").mkdir()  # writes fail as on a full or read-only disk
    log = MonitorLog(tmp_path)
    log.append(sample(1_800_000_000, 1.0, 1))
    log.append(sample(1_800_000_001, 1.0, 2))
    assert log.failures == 2


def test_the_report_summarises_every_figure() -> None:
    samples = [
        {"timestamp": "a", "cpu_percent": 10.0, "inference_count": 5, "temperature_c": None},
        {"timestamp": "b", "cpu_percent": 30.0, "inference_count": 9, "temperature_c": None},
    ]
    report = build_report(samples, "site1", "cam1", now=1_800_000_000)
    assert report["summary"]["cpu_percent"] == {"min": 10.0, "mean": 20.0, "max": 30.0}
    assert "temperature_c" not in report["summary"]  # no sensor: no made-up figure
    assert (report["first_sample"], report["last_sample"], report["sample_count"]) == ("a", "b", 2)
    assert "cpu_percent" in render(report) and "cam1" in render(report)


def agent_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecascade", "agent", "report", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_agent_report_prints_the_table_and_writes_the_json(tmp_path: Path) -> None:
    log = MonitorLog(tmp_path / "agent")
    (tmp_path / "agent").mkdir()
    for i in range(5):
        log.append(sample(1_800_000_000 + 10 * i, cpu=10.0 * i, inferences=100 * i))
    out = tmp_path / "report.json"
    done = agent_report("--data-dir", str(tmp_path / "agent"), "--output", str(out), "--last", "3")
    assert done.returncode == 0, done.stderr
    assert "mean_latency_ms" in done.stdout and f"wrote {out}" in done.stdout
    report = json.loads(out.read_text())
    assert report["sample_count"] == 3
    assert [s["inference_count"] for s in report["samples"]] == [200, 300, 400]
    assert report["summary"]["disk_percent"]["max"] == 12.5


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--last", "0"], "--last must be at least 1"), ([], "no monitoring samples")],
)
def test_agent_report_refuses_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    done = agent_report("--data-dir", str(tmp_path), *args)
    assert done.returncode != 0 and message in done.stderr
