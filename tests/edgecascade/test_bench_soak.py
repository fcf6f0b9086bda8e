"""``edgecascade bench soak``: the levelling-off rule, and a short run of the real topology."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecascade.benchmarks.soak import _levels
from tests.utils.paths import REPO


def test_a_figure_levels_off_when_its_last_quarter_stays_near_the_third() -> None:
    flat = [100.0] * 8 + [101.0] * 8
    ratio, level = _levels(flat, floor=8.0, max_growth=0.1)
    assert ratio == pytest.approx(1.0) and level
    leaking = [100.0 + 10 * i for i in range(16)]  # +10 MB a sample, for ever
    ratio, level = _levels(leaking, floor=8.0, max_growth=0.1)
    assert ratio > 1.1 and not level
    assert _levels([1.0, 2.0], floor=0.0, max_growth=0.0) == (1.0, True)  # too short to judge


@pytest.mark.e2e
def test_a_short_soak_samples_every_process_and_file(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = ["bench", "soak", "--minutes", "0.5", "--devices", "1", "--fps", "5"]
    argv += ["--sample-s", "2", "--no-faults", "--workdir", str(tmp_path / "w")]
    done = subprocess.run(
        [sys.executable, "-m", "edgecascade", *argv, "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["every_result_stored"] and report["summary"]["results"] == 150
    figures = report["figures"]
    for key in ("cam1.rss_mb", "gateway.fds", "cloud.rss_mb", "outbox cam1.bytes"):
        assert key in figures, sorted(figures)
    assert len(report["series"]) >= 5
    assert "q4/q3_ratio" in done.stdout
