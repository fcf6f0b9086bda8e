"""Benchmarks run end to end with tiny counts and write JSON with their ratio keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from edgecascade.benchmarks.camera_frames import write_camera_frames
from edgecascade.cli import main
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE


def test_bench_codec_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    assert main(["bench", "codec", "--count", "5", "--output", str(out)]) == 0
    sizes = json.loads(out.read_text())["sizes"]
    assert set(sizes) == {"28", "224", "640"}
    for entry in sizes.values():
        assert entry["base64_vs_binary_size_ratio"] > 1.0  # base64 in JSON is always bigger
        assert entry["binary_bytes_mean"] > entry["jpeg_bytes_mean"]


def test_bench_edge_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "edge.json"
    argv = [
        "bench",
        "edge",
        "--frames-limit",
        "30",
        "--seconds",
        "0.2",
        "--idle-seconds",
        "0.5",
        "--threads",
        "1",
        "2",
        "--rounds",
        "1",
    ]
    assert main([*argv, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    frames = report["frames"]  # the default: generated camera-sized JPEG frames
    assert (frames["kind"], frames["width"], frames["height"]) == ("folder", 1280, 720)
    assert set(report["models"]) == {
        f"fashion_{role}_int8.tflite threads={n}" for role in ("edge", "cloud") for n in (1, 2)
    }
    for key, entry in report["models"].items():
        assert entry["pipeline_frames"] == 30
        assert entry["interpreter_threads"] in (1, 2)
        assert 0 < entry["peak_private_mb"] < entry["peak_rss_mb"]
        assert entry["pipeline_vs_raw_ratio"] > 0
        assert entry["decode_scale"] == "1/8 gray"  # 28x28 gray models, 1280x720 frames
        assert entry["decode_for_model_ms"] > 0 and entry["decode_full_ms"] > 0
        stem, threads = key.split(".tflite threads=")
        assert (
            report[f"{stem}_threads{threads}_pipeline_vs_raw_ratio"]
            == (entry["pipeline_vs_raw_ratio"])
        )
        assert {"capture", "preprocess", "invoke", "postprocess", "publish"} <= set(
            entry["stages_ms"]
        )
    assert report["idle_cpu_percent"] >= 0
    assert "frames: 1280x720 JPEG made from the Fashion-MNIST" in capsys.readouterr().out


def _small_bench(frames: Path, out: Path) -> dict[str, Any]:
    argv = ["bench", "edge", "--model", str(EDGE_MODEL), "--frames", str(frames)]
    argv += ["--frames-limit", "12", "--seconds", "0.1", "--idle-seconds", "0.2", "--rounds", "1"]
    assert main([*argv, "--threads", "1", "--output", str(out)]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    entry = report["models"]["fashion_edge_int8.tflite threads=1"]
    assert entry["pipeline_frames"] == 12 and entry["raw_invoke_per_s"] > 0
    assert report["fashion_edge_int8_threads1_pipeline_vs_raw_ratio"] > 0
    return report


def test_bench_edge_reads_a_jpeg_folder_and_a_video_file(tmp_path: Path) -> None:
    jpegs = write_camera_frames(EVAL_SAMPLE, tmp_path / "jpeg", 6, size=(160, 96))
    assert len(list(jpegs.rglob("*.jpg"))) == 6 and not list(jpegs.rglob("*.png"))
    frames = _small_bench(jpegs, tmp_path / "jpeg.json")["frames"]
    assert (frames["kind"], frames["width"], frames["height"]) == ("folder", 160, 96)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 96))
    for path in sorted(jpegs.rglob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None
        writer.write(image)
    writer.release()
    report = _small_bench(video, tmp_path / "video.json")
    frames = report["frames"]
    assert (frames["kind"], frames["width"], frames["height"]) == ("video", 160, 96)
    assert "decode_scale" not in report["models"]["fashion_edge_int8.tflite threads=1"]


def test_bench_gateway_writes_json_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gateway.json"
    argv = [
        "bench",
        "gateway",
        "--results",
        "300",
        "--paced-results",
        "50",
        "--paced-rate",
        "100",
        "--linger-ms",
        "50",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["lost"] == 0 and report["duplicates"] == 0
    for path in ("raw", "gateway"):
        assert report[path]["flood"]["arrived"] == 300
        assert report[path]["drain"]["arrived"] == 300  # the backlog, after coming back
        assert report[path]["paced"]["arrived"] == 50
    assert report["raw"]["flood"]["results_per_message"] == 1.0
    assert report["results_per_cloud_message_flood"] > 1.0  # the gateway batched
    assert report["gateway_vs_raw_throughput_ratio"] > 0
    assert report["gateway_vs_raw_drain_ratio"] > 0
    assert report["added_latency_ms_p50"] is not None
    # The flooder scenario: the neighbours lose nothing; of the flood, little goes up.
    flooder = report["flooder"]
    assert [flooder[phase]["arrived"] for phase in ("quiet", "control", "flood")] == [50] * 3
    assert flooder["control"]["flooder_arrived"] == 0  # another site: not the gateway's
    assert 0 < flooder["flood"]["flooder_arrived"] < flooder["flood"]["flooder_sent"]
    assert report["flooder_p99_ratio"] > 0 and report["flooder_vs_control_p99_ratio"] > 0
    assert report["flooder_vs_budget"] > 1
    # What the flood cost: the gateway's CPU in each phase, and the flooder's own.
    assert all(flooder[phase]["gateway_cpu_s"] > 0 for phase in ("quiet", "control", "flood"))
    assert flooder["flood"]["flooder_cpu_s"] > 0 and flooder["quiet"]["flooder_cpu_s"] == 0
    assert report["flooder_gateway_cpu_us_per_refused"] is not None


def test_bench_cloud_stores_every_result_on_sqlite_and_postgresql(
    tmp_path: Path, pg_server_url: str
) -> None:
    out = tmp_path / "cloud.json"
    argv = [
        "bench",
        "cloud",
        "--results",
        "300",
        "--batch-size",
        "50",
        "--postgres-url",
        pg_server_url,
        "--timeout",
        "60",
        "--frames",
        "60",
        "--repeat",
        "1",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    for database in ("sqlite", "postgresql"):
        runs = report[database]
        assert runs["executemany"]["stored"] == 300
        assert runs["ingest_single"]["messages"] == 300
        assert runs["ingest_batched"]["messages"] == 6  # 300 results in batches of 50
        assert runs["ingest_single_backlog"]["messages"] == 300
        for path in ("ingest_single", "ingest_single_backlog", "ingest_batched"):
            assert runs[path]["stored"] == 300 and not runs[path]["timed_out"]
            assert runs[path]["publish_seconds"] is not None  # the broker acknowledged them all
            assert runs[path]["seconds"] > 0
        assert report[f"{database}_ingest_vs_executemany_ratio"] > 0
        assert report[f"{database}_backlog_ingest_vs_executemany_ratio"] > 0
        assert report[f"{database}_batched_ingest_vs_executemany_ratio"] > 0
    for run in ("one_worker", "two_workers"):  # every escalation got its verdict back
        for mode in ("backlog", "live"):
            measured = report["reinference"][run][mode]
            assert measured["verdicts"] == 60 and measured["lost"] == 0
            assert measured["inference_ms_p50"] > 0 and measured["seconds"] > 0
    assert report["two_vs_one_workers_ratio"] > 0
    assert report["live_two_vs_one_workers_ratio"] > 0
    assert "table" not in report  # printed, not written


def test_bench_cloud_skips_postgresql_without_a_server_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("edgecascade.postgres.find_server_binaries", lambda: None)
    out = tmp_path / "cloud.json"
    argv = [
        "bench",
        "cloud",
        "--results",
        "20",
        "--batch-size",
        "10",
        "--frames",
        "0",
        "--repeat",
        "2",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert "no PostgreSQL server binaries" in report["postgresql"]["skipped"]
    printed = capsys.readouterr().out
    assert "--postgres-url" in printed  # the table tells how to measure it
    assert "each round's ratio" in printed
    assert not any(key.startswith("postgresql_") for key in report)
    sqlite = report["sqlite"]
    batched = sqlite["ingest_batched"]
    assert batched["stored"] == 20
    # Two runs of each ingest path, each between two executemany runs: seven of those.
    assert sqlite["executemany"]["runs"] == 1 + 3 * 2
    rates = sqlite["executemany"]["rows_per_s_runs"]
    assert batched["runs"] == 2
    for i, (rate, ratio) in enumerate(
        zip(batched["rows_per_s_runs"], batched["vs_executemany_runs"], strict=True)
    ):
        around = rates[3 * i : 3 * i + 2]  # batches run first in a round
        assert ratio == pytest.approx(rate / (sum(around) / 2))
    # The lower of the two ratios is the reported one.
    assert batched["vs_executemany"] == min(batched["vs_executemany_runs"])
    assert report["sqlite_batched_ingest_vs_executemany_ratio"] == batched["vs_executemany"]


@pytest.mark.parametrize("flag", ["--repeat", "--results", "--batch-size"])
def test_bench_cloud_refuses_a_count_below_one_by_name(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "cloud", "--skip-postgres", "--frames", "0", flag, "0"]) != 0
    assert f"{flag} must be at least 1, got 0" in capsys.readouterr().err


def test_bench_outbox_writes_both_modes_and_their_ratios(tmp_path: Path) -> None:
    out = tmp_path / "outbox.json"
    argv = ["bench", "outbox", "--dir", str(tmp_path), "--count", "20", "--group", "5"]
    assert main([*argv, "--groups", "4", "--rounds", "1", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"normal", "full"}
    for mode in report["modes"].values():
        assert mode["puts_per_s"] > 0 and mode["grouped_msgs_per_s"] > 0
        assert 0 < mode["put_ms_p50"] <= mode["put_ms_p99"]
    ratio = report["modes"]["full"]["puts_per_s"] / report["modes"]["normal"]["puts_per_s"]
    assert report["full_vs_normal_put_ratio"] == ratio
    assert report["payload_bytes"] > 300  # a real encoded result message
    assert [p.name for p in tmp_path.iterdir()] == ["outbox.json"]  # its files are removed
    with pytest.raises(ValueError, match="--rounds must be at least 1, not 0"):
        main([*argv, "--rounds", "0"])
