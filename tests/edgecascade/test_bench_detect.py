"""``bench detect``: the composed face set, the offline evaluator and the command."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecascade.benchmarks.detect import format_report, parse_bands
from edgecascade.benchmarks.detect_metrics import Found, Truth
from edgecascade.benchmarks.detect_offline import FrameRun
from edgecascade.benchmarks.detect_policies import GATED, Band, escalations, score_policy
from edgecascade.benchmarks.detect_scene import (
    CAMERAS,
    FACES,
    Visit,
    _read,
    background,
    cut_out,
    generate,
    paste,
)
from edgecascade.benchmarks.detect_topology import toml_text, topology_policies
from edgecascade.cli import main
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.shared.boxes import Box, iou
from edgecascade.shared.errors import EdgeCascadeError
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.runtime.tiles import Slicing, auto_tile, detect_sliced
from tests.utils.paths import REPO

FACE_SHORT = REPO / "models" / "faces" / "face_short_range.tflite"
FACE_FULL = REPO / "models" / "faces" / "face_full_range.tflite"


def test_the_set_is_deterministic_and_labelled_inside_the_frame(tmp_path: Path) -> None:
    first = json.loads(generate(tmp_path / "a", seed=7, frames_per_camera=5).read_text())
    second = json.loads(generate(tmp_path / "b", seed=7, frames_per_camera=5).read_text())
    assert first == second
    assert first["seed"] == 7 and len(first["frames"]) == 5 * len(CAMERAS)
    for frame in first["frames"]:
        a = (tmp_path / "a" / frame["file"]).read_bytes()
        assert a == (tmp_path / "b" / frame["file"]).read_bytes()
        for obj in frame["objects"]:
            x0, y0, x1, y1 = obj["box"]
            assert obj["label"] == "face" and 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
    other = json.loads(generate(tmp_path / "c", seed=8, frames_per_camera=5).read_text())
    assert other["frames"] != first["frames"] or any(
        (tmp_path / "a" / f["file"]).read_bytes() != (tmp_path / "c" / f["file"]).read_bytes()
        for f in first["frames"]
    )


@pytest.mark.parametrize("person", sorted(FACES))
def test_a_near_face_is_found_by_both_and_a_far_one_only_on_tiles(person: str) -> None:
    photo, box = FACES[person]
    cutout = cut_out(_read(photo), box)
    edge = Detector.load(FACE_SHORT, num_threads=1)
    cloud = Detector.load(FACE_FULL, num_threads=1)
    slicing = Slicing(tile=auto_tile(720, 1280, 192))

    def place(width: float) -> tuple[Any, Box]:
        frame = background(_read(CAMERAS["temple"]))
        visit = Visit(person, False, 1.0, "x", 0, 1, (640, 360, width), (640, 360, width))
        return frame, paste(frame, cutout, visit, 0)

    frame, label = place(260)
    for detector in (edge, cloud):
        assert any(iou(d.box, label) >= 0.5 for d in detector.detect(frame).detections)
    frame, label = place(28)
    assert not any(iou(d.box, label) > 0 for d in edge.detect(frame).detections)
    found = detect_sliced(cloud, frame, slicing).detections
    assert any(iou(d.box, label) >= 0.5 for d in found)


def _run(camera: str, scores: list[float], level: int) -> FrameRun:
    return FrameRun(
        camera=camera,
        index=0,
        truth=[],
        edge=[Found("face", s, (0.0, 0.0, 10.0, 10.0)) for s in scores],
        cloud=[],
        jpeg_bytes=1000,
        thumbnail=np.full((32, 32), level, np.uint8),
    )


def _rules(reasons: list[str | None]) -> list[str | None]:
    return [None if r is None else r.split(" ", 1)[0].rstrip(":") for r in reasons]


def test_escalation_reasons_are_the_agents_rules() -> None:
    band = Band(0.3, 0.8, gate=2.0, count_window=1)
    runs = [
        _run("a", [0.9], 10),  # first frame: nothing to compare with
        _run("a", [0.9, 0.5], 10),  # 0.5 in [0.3, 0.8)
        _run("a", [0.9, 0.9], 10),  # two faces, as the frame before
        _run("a", [0.9], 11),  # one face after two
        _run("a", [], 30),  # none after one (the scene changed too: count comes first)
        _run("a", [0.1], 60),  # below the band's floor: nothing found, the scene changed
        _run("a", [], 61),  # nothing found, the scene unchanged
        _run("b", [], 200),  # another camera's first frame: its own gate and history
    ]
    reasons = _rules(escalations(runs, band))
    assert reasons == [None, "score_band", None, "count", "count", "empty", None, None]


def test_bands_are_parsed_or_refused_by_name() -> None:
    assert parse_bands("0.3-0.8@0.5, 0.5-0.7, 0.3-0.8@max12, 0.5-0.8@max16+cloud") == (
        Band(0.3, 0.8, 0.5),
        Band(0.5, 0.7, 2.0),
        Band(0.3, 0.8, 12.0, "max"),
        Band(0.5, 0.8, 16.0, "max", cloud=True),
    )
    assert parse_bands("0.5-0.8+cloud")[0].name == "band-0.50-0.80@2+cloud"
    with pytest.raises(EdgeCascadeError, match=r"'0\.8-0\.3'"):
        parse_bands("0.8-0.3")
    with pytest.raises(EdgeCascadeError, match="'x'"):
        parse_bands("x")
    with pytest.raises(EdgeCascadeError, match=r"'0\.5-0\.8@max16\+clouds'"):
        parse_bands("0.5-0.8@max16+clouds")


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The topology run on 3 cameras x 8 frames: cloud-only, edge-only and one band."""
    work = tmp_path_factory.mktemp("detect")
    out, png = work / "detect.json", work / "detect.png"
    argv = ["bench", "detect", "--frames-per-camera", "8", "--fps", "10", "--timeout", "60"]
    argv += ["--bands", "0.3-0.8@0.5,0.5-0.8@max8", "--workdir", str(work / "run")]
    assert main([*argv, "--output", str(out), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_topology_run_writes_the_issue_shape(topology: dict[str, Any]) -> None:
    assert topology["mode"] == "topology"
    faces = topology["pairs"]["faces"]
    policies = {p["policy"]: p for p in faces["policies"]}
    assert set(policies) == {"cloud-only", "edge-only", "band-0.30-0.80@0.5", "band-0.50-0.80@max8"}
    assert policies["band-0.50-0.80@max8"]["gate_measure"] == "max"
    assert faces["set"]["frames"] == 8 * len(CAMERAS)
    for p in policies.values():
        assert {"policy", "map50", "bytes_ratio", "small_recall", "escalated_fraction"} <= set(p)
        assert 0 <= p["map50"] <= 1 and 0 <= p["precision"] <= 1
        assert p["first_answer_ms"]["p50"] > 0 and p["final_answer_ms"]["p95"] > 0
        # every frame the agents did not gate has its result stored and uplinked
        assert p["agent"]["results"] + p["agent"]["gated"] == p["frames"] == 8 * len(CAMERAS)
        assert p["uplinked_results"] == p["agent"]["results"]
        assert p["verdicts_missing"] == 0 and p["verdicts_used"] == p["escalated"]
    table = format_report(faces, "topology")
    assert table.startswith("TOPOLOGY") and "first p50/p95 ms" in table


def test_topology_references_escalate_everything_and_nothing(topology: dict[str, Any]) -> None:
    policies = {p["policy"]: p for p in topology["pairs"]["faces"]["policies"]}
    cloud, edge = policies["cloud-only"], policies["edge-only"]
    assert cloud["escalated_fraction"] == 1.0 and cloud["bytes_ratio"] == 1.0
    assert cloud["gated_fraction"] == 0.0 and cloud["frame_bytes"] > 0
    assert edge["escalated_fraction"] == 0.0 and edge["frame_bytes"] == 0
    assert edge["bytes_ratio"] < 0.05  # results only
    # Every answer of cloud-only is the cloud's: far faces only its tiles find are found.
    assert cloud["small_recall"] > edge["small_recall"] == 0.0
    band = policies["band-0.30-0.80@0.5"]
    assert band["edge_threshold"] == 0.3 and band["gate_measure"] == "mean"
    assert 0.0 <= band["bytes_ratio"] <= 1.0


def test_topology_policies_are_the_agents_settings() -> None:
    policies = topology_policies((Band(0.3, 0.8, 0.5), Band(0.5, 0.8, 8.0, "max")))
    by_name = {p.name: p for p in policies}
    assert by_name["band-0.50-0.80@max8"].gating["measure"] == "max_cell"
    assert by_name["cloud-only"].escalation["mode"] == "always"
    assert by_name["edge-only"].escalation["detection"] == {"rules": []}
    assert by_name["edge-only"].escalation["audit_fraction"] == 0.0
    band = by_name["band-0.30-0.80@0.5"]
    assert band.gating == {"enabled": True, "threshold": 0.5, "measure": "mean"}
    assert band.edge_threshold == 0.3
    assert band.device("temple") == "band-0.30-0.80_gate0.5.temple"
    text = toml_text({"threads": 1, "escalation": band.escalation, "gating": band.gating})
    settings = AgentSettings.model_validate(tomllib.loads(text))
    assert settings.escalation.detection.score_low == 0.3 and settings.gating.enabled
    local = by_name["band-0.50-0.80@max8"]
    text = toml_text({"gating": local.gating})
    assert AgentSettings.model_validate(tomllib.loads(text)).gating.measure == "max_cell"
    cloud = topology_policies((Band(0.5, 0.8, 8.0, "max", cloud=True),))[-1]
    text = toml_text({"escalation": cloud.escalation, "gating": cloud.gating})
    rules = AgentSettings.model_validate(tomllib.loads(text)).escalation.detection.rules
    assert rules == ["score_band", "count", "empty", "fewer_than_cloud"]
    device = cloud.device("temple")
    assert device == "band-0.50-0.80_gatemax8_cloud.temple"
    assert AgentSettings(device=device).device == device  # a device id the contract allows
    edge = toml_text({"escalation": by_name["edge-only"].escalation})
    assert AgentSettings.model_validate(tomllib.loads(edge)).escalation.detection.rules == []


def test_offline_run_writes_the_issue_shape(tmp_path: Path) -> None:
    out = tmp_path / "detect.json"
    argv = ["bench", "detect", "--offline", "--frames-per-camera", "4", "--seed", "3"]
    argv += ["--bands", "0.3-0.8@0.5", "--workdir", str(tmp_path / "set"), "--output", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "offline"
    policies = {p["policy"]: p for p in report["pairs"]["faces"]["policies"]}
    assert set(policies) == {"edge-only", "cloud-only", "band-0.30-0.80@0.5"}
    for p in policies.values():
        assert {"policy", "map50", "bytes_ratio", "small_recall", "escalated_fraction"} <= set(p)
        assert 0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1
    assert policies["cloud-only"]["bytes_ratio"] == 1.0
    assert policies["cloud-only"]["escalated_fraction"] == 1.0
    assert policies["edge-only"]["escalated_fraction"] == 0.0
    assert policies["edge-only"]["bytes_ratio"] < 0.05  # results only, no frames
    assert report["pairs"]["faces"]["set"]["frames"] == 4 * len(CAMERAS)


def test_a_cloud_band_holds_changed_frames_to_the_clouds_last_count() -> None:
    """The simulated verdict of an escalated frame is the cloud's count on it: later changed
    frames with fewer edge boxes go up until the cloud's count comes down."""
    runs = [
        _run("a", [], 10),
        _run("a", [], 40),  # nothing found on a changed scene: up; the cloud finds one face
        _run("a", [0.9], 70),  # one after none: up (the cloud finds none: a stand-in)
        _run("a", [0.7], 100),  # in the band: up; the cloud finds two (a far face besides)
        _run("a", [0.9], 130),  # one found, two counted last: up
        _run("a", [0.9], 130),  # unchanged: left alone
    ]
    near = Found("face", 0.9, (0.0, 0.0, 10.0, 10.0))
    far = Found("face", 0.8, (50.0, 0.0, 55.0, 5.0))
    runs[1].cloud.append(near)
    runs[3].cloud.extend([near, far])
    plain = Band(0.5, 0.8, 8.0, "max", count_window=1)
    cloud = dataclasses.replace(plain, cloud=True)
    assert cloud.rules[-1] == "fewer_than_cloud" and "fewer_than_cloud" not in plain.rules
    unsure = [None, "empty", "count", "score_band", None, None]
    assert _rules(escalations(runs, plain)) == unsure
    assert _rules(escalations(runs, cloud)) == [*unsure[:4], "fewer_than_cloud", None]


def test_with_gate_skips_an_unchanged_frame_costs_nothing_and_keeps_the_last_answer() -> None:
    face = Found("face", 0.9, (0.0, 0.0, 10.0, 10.0))
    runs = [_run("a", [0.9], 10), _run("a", [], 10), _run("b", [], 10)]
    runs[1].truth.append(Truth("face", (0.0, 0.0, 10.0, 10.0)))  # the face is still there
    band = Band(0.5, 0.8, 8.0, "max")
    assert _rules(escalations(runs, band)) == [None, "count", None]  # the agent never sees it:
    reasons = escalations(runs, band, skip=True)
    assert reasons == [None, GATED, None]  # camera b's first frame is never skipped
    gated = [r == GATED for r in reasons]
    kept = score_policy(runs, "skip", "cascade", [False] * 3, 0.5, gated)
    plain = score_policy(runs, "plain", "cascade", [False] * 3, 0.5)
    assert kept["gated_fraction"] == 1 / 3 and plain["gated_fraction"] == 0.0
    assert kept["recall"] == 1.0 > plain["recall"]  # the skipped frame kept the face it had
    assert kept["uplink_bytes"] < plain["uplink_bytes"]  # and sent no result
    assert runs[0].edge == [face]


def test_one_changed_cell_moves_the_local_measure_not_the_mean() -> None:
    empty = _run("a", [], 10)
    person = _run("a", [], 10)
    person.thumbnail[5, 7] = 60  # a far person: one cell of 1024 changes by 50
    mean = escalations([empty, person], Band(0.3, 0.8, 0.5))
    local = escalations([empty, person], Band(0.3, 0.8, 8.0, "max"))
    assert mean == [None, None]  # 50 / 1024 is below 0.5
    assert _rules(local) == [None, "empty"]
