"""``bench cascade`` end to end on a few frames: real brokers, cloud, worker, gateway, agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecascade.benchmarks.cascade_pairs import frame_subset, resolve_pairs
from edgecascade.cli import build_parser, main
from edgecascade.gateway.settings import BatchSettings
from edgecascade.shared.errors import EdgeCascadeError

FRAMES = 30


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["policy"]: p for p in report["pairs"]["fashion"]["policies"]}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("cascade")
    out, png = work / "cascade.json", work / "cascade.png"
    argv = [
        "bench",
        "cascade",
        "--frames-limit",
        str(FRAMES),
        "--fps",
        "100",
        "--policies",
        "threshold-0.80,calibrated-0.90",
        "--timeout",
        "60",
        "--compress-batches",  # as docs/BENCHMARKS.md ran it (also the gateway's default now)
        "--workdir",
        str(work / "run"),
        "--output",
        str(out),
        "--plot",
        str(png),
    ]
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_every_policy_saw_every_frame_answered_and_uplinked(report: dict[str, Any]) -> None:
    policies = _by_name(report)
    assert list(policies) == ["cloud-only", "edge-only", "threshold-0.80", "calibrated-0.90"]
    for p in policies.values():
        assert p["frames"] == p["labelled_frames"] == FRAMES
        assert p["uplinked_results"] == FRAMES  # every result crossed to the cloud broker
        assert p["verdicts"] == p["escalated"] and p["verdicts_missing"] == 0
        assert p["uplink_bytes"] == p["result_bytes"] + p["frame_bytes"]
        # A result is ~600 bytes of JSON; the gateway's zlib batches carry it in far fewer.
        assert 0 < p["result_bytes"] / FRAMES < 400
        assert 0 <= p["accuracy"] <= 1 and p["first_answer_ms"]["p50"] > 0
        assert p["final_answer_ms"]["p95"] >= p["first_answer_ms"]["p50"]


def test_references_escalate_nothing_and_everything(report: dict[str, Any]) -> None:
    policies = _by_name(report)
    edge, cloud = policies["edge-only"], policies["cloud-only"]
    assert edge["escalated"] == 0 and edge["frame_bytes"] == 0 and edge["frame_bytes_ratio"] == 0
    assert edge["accuracy"] == edge["edge_accuracy"]  # no verdict changed an answer
    assert edge["final_answer_ms"] == edge["first_answer_ms"]
    assert cloud["escalated"] == cloud["verdicts"] == FRAMES
    assert cloud["bytes_ratio"] == cloud["frame_bytes_ratio"] == 1.0
    assert cloud["accuracy_vs_cloud_points"] == 0.0
    # The cloud's answer arrives after the edge's, over two brokers, the gateway and a worker.
    assert cloud["final_answer_ms"]["p50"] > cloud["first_answer_ms"]["p50"]


def test_cascade_sits_between_the_references(report: dict[str, Any]) -> None:
    policies = _by_name(report)
    edge, cloud = policies["edge-only"], policies["cloud-only"]
    for name in ("threshold-0.80", "calibrated-0.90"):
        p = policies[name]
        assert 0 < p["escalated"] < FRAMES
        assert edge["uplink_bytes"] < p["uplink_bytes"] < cloud["uplink_bytes"]
        assert p["bytes_ratio"] == pytest.approx(p["uplink_bytes"] / cloud["uplink_bytes"])
        # Escalated frames cost about what they cost in cloud-only, frame for frame.
        per_frame = p["frame_bytes"] / p["escalated"]
        assert per_frame == pytest.approx(cloud["frame_bytes"] / FRAMES, rel=0.2)
    fit = report["pairs"]["fashion"]["temperature_fit"]
    assert fit["samples"] == FRAMES and fit["nll_after"] <= fit["nll_before"]
    assert policies["calibrated-0.90"]["temperature"] == fit["temperature"]
    assert set(report["pairs"]["fashion"]["targets"]) >= {"target_bytes_ratio", "lines"}
    assert report["pairs"]["fashion"]["gateway_compress"] is True


def test_a_pair_that_is_not_built_is_skipped_with_the_reason(tmp_path: Path) -> None:
    pairs, skipped = resolve_pairs(["imagenet"], None)
    assert pairs == [] and "--frames DIR" in skipped["imagenet"]
    pairs, skipped = resolve_pairs(["fashion", "imagenet"], tmp_path / "nowhere")
    assert pairs == [] and str(tmp_path / "nowhere") in skipped["fashion"]
    assert main(["bench", "cascade", "--pair", "imagenet"]) == 2  # nothing to measure, said so


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--policies", "threshold-0.80,nope"], "--policies: unknown ['nope']"),
        (["--fps", "0"], "--fps must be positive, got 0.0"),
        (["--frames-limit", "0"], "--frames-limit must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_named_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "cascade", *argv]) == 2
    assert message in capsys.readouterr().err


def test_frames_are_taken_in_turn_from_each_label(tmp_path: Path) -> None:
    root = tmp_path / "frames"
    for label, count in (("a", 3), ("b", 1), ("c", 2)):
        (root / label).mkdir(parents=True)
        for n in range(count):
            (root / label / f"{n}.png").write_bytes(b"")
    subset = frame_subset(root, 5, tmp_path / "subset")
    chosen = sorted(p.relative_to(subset).as_posix() for p in subset.rglob("*.png"))
    assert chosen == ["a/0.png", "a/1.png", "b/0.png", "c/0.png", "c/1.png"]
    assert frame_subset(root, None, tmp_path / "unused") == root
    (tmp_path / "flat").mkdir()
    with pytest.raises(EdgeCascadeError, match="has no <label>/ folders of images"):
        frame_subset(tmp_path / "flat", 5, tmp_path / "x")


def test_batch_compression_follows_the_gateway_unless_named() -> None:
    """``--compress-batches`` is the gateway's own default (on); the documented uncompressed run
    names ``--no-compress-batches``."""
    parser = build_parser()
    base = ["bench", "cascade"]
    assert parser.parse_args(base).compress_batches is BatchSettings().compress is True
    assert parser.parse_args([*base, "--compress-batches"]).compress_batches is True
    assert parser.parse_args([*base, "--no-compress-batches"]).compress_batches is False
