"""``edgecascade bench edge`` with a detection model: the agent's pipeline around the detector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgecascade.cli import main
from tests.utils.paths import FACE_SHORT, PHOTOS


def test_bench_edge_measures_a_detector(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg"):
        shutil.copy(PHOTOS / name, frames / name)
    out = tmp_path / "edge.json"
    argv = ["bench", "edge", "--model", str(FACE_SHORT), "--frames", str(frames)]
    argv += ["--frames-limit", "12", "--seconds", "0.1", "--idle-seconds", "0.2", "--threads", "1"]
    assert main([*argv, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    entry = report["models"]["face_short_range.tflite threads=1"]
    assert entry["pipeline_frames"] == 12 and entry["raw_invoke_per_s"] > 0
    assert report["face_short_range_threads1_pipeline_vs_raw_ratio"] > 0
    # Raw and pipeline in alternating rounds (3 by default): the rates are the rounds' totals.
    assert len(entry["rounds"]) == 3
    rates = [r["pipeline_frames_per_s"] for r in entry["rounds"]]
    assert min(rates) <= entry["pipeline_frames_per_s"] <= max(rates)
    assert all(r["ratio"] > 0 for r in entry["rounds"])
    # The 512x512 astronaut for a 128x128 colour input: decoded at 1/4, in colour.
    assert entry["decode_scale"] == "1/4"
    assert {"capture", "preprocess", "invoke", "postprocess", "publish"} <= set(entry["stages_ms"])
