"""``bench load`` end to end with tiny steps: real brokers, gateway and cloud processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecascade.cli import main


def test_bench_load_steps_up_and_reports_the_rate_held(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = [
        "bench",
        "load",
        "--devices",
        "3",
        "--fps",
        "2",
        "5",
        "--step-seconds",
        "1",
        "--drain-seconds",
        "20",
        "--max-p99-ms",
        "10000",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [s["offered"] for s in report["steps"]] == [6, 15]  # 3 devices x fps x 1 s
    for step in report["steps"]:
        assert step["delivered"] == step["offered"] and step["lost"] == 0
        assert 0 < step["latency_ms_p50"] <= step["latency_ms_p99"]
        assert step["held"]
    assert report["highest_rate_held_per_s"] == 15.0
    assert report["lost_at_highest_rate_held"] == 0
    assert "every step held" in report["stopped"]


def test_bench_load_stops_at_the_first_step_over_the_latency_bound(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    # The gateway lingers 200 ms for a batch to fill: a 1 ms bound cannot hold.
    argv = [
        "bench",
        "load",
        "--devices",
        "2",
        "--fps",
        "2",
        "4",
        "--step-seconds",
        "1",
        "--max-p99-ms",
        "1",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert len(report["steps"]) == 1  # not raised past a step that broke
    assert report["steps"][0]["lost"] == 0 and not report["steps"][0]["held"]
    assert report["highest_rate_held_per_s"] == 0.0
    assert "4 results/s broke" in report["stopped"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fps", "10", "5"], "--fps must be rising step by step, got [10.0, 5.0]"),
        (["--fps", "0"], "--fps values must be positive, got 0"),
        (["--devices", "0"], "--devices must be at least 1, got 0"),
        (["--step-seconds", "-1"], "--step-seconds must be positive, got -1"),
    ],
)
def test_bench_load_refuses_bad_options_by_name(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "load", *flags]) == 2
    assert message in capsys.readouterr().err
