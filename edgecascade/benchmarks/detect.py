"""``edgecascade bench detect``: face detection at the edge, unsure frames to the cloud.

On the composed face set (:mod:`.detect_scene`: fixed cameras, people coming and going, near
faces the edge finds and far ones only the cloud's sliced inference finds), the policies are
edge-only, cloud-only and the cascade at several uncertainty bands; the figures are mAP@0.5,
recall of small faces, the escalated fraction and bytes uplinked relative to cloud-only.

Two modes. ``--offline`` runs :mod:`.detect_offline`: both detectors once over the set, each
policy simulated on their outputs; it is how policies are chosen and checked, and its JSON says
``"mode": "offline"``. The default mode, through the real topology (brokers, gateway, cloud,
a worker running the cloud detector, per policy one agent per camera, as ``bench cascade``
does), is :func:`run_topology` (:mod:`.detect_topology`); its JSON says ``"mode": "topology"``
and adds the share of frames the agents' scene gate skipped and the first and final answer
latencies.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.table import format_table
from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "models" / "faces"
# The edge runs the full-range detector on the whole frame (192 px input): the short-range one
# (128 px) finds no face under about 150 px (``--edge-model`` measures it). The cloud runs the
# same full-range network on the full-resolution frame and on overlapping tiles.
EDGE_MODEL = FACES / "face_full_range.tflite"
CLOUD_MODEL = FACES / "face_full_range.tflite"
# The target: the cascade within this many mAP@0.5 points of cloud-only ...
TARGET_POINTS = 1.0
# ... at no more than this fraction of cloud-only's bytes.
TARGET_BYTES_RATIO = 0.30


def add_detect_parser(benches: SubParsers[argparse.ArgumentParser]) -> None:
    from edgecascade.benchmarks.detect_scene import DEFAULT_SEED

    parser = benches.add_parser(
        "detect",
        help="face detection: mAP@0.5 vs bytes uplinked, edge-only, cloud-only, cascade bands",
        description=(
            "Generate the labelled face set (fixed cameras, people coming and going; "
            "deterministic from --seed) and measure edge-only, cloud-only and the cascade at "
            "several uncertainty bands: mAP@0.5, recall of small faces, escalated fraction, "
            "bytes uplinked relative to cloud-only. --offline simulates the policies on the two "
            "detectors' outputs; without it the run goes through the real topology."
        ),
    )
    arg = parser.add_argument
    arg(
        "--offline",
        action="store_true",
        help="simulate the policies on the detectors' outputs (no brokers, cloud or agents)",
    )
    arg(
        "--gate-skips",
        action="store_true",
        help="offline: the cascades' scene gates skip unchanged frames as the agent's do (a "
        "skipped frame sends nothing and keeps its camera's last answer)",
    )
    arg("--seed", type=int, default=DEFAULT_SEED, help=f"the set's seed (default: {DEFAULT_SEED})")
    arg(
        "--frames-per-camera",
        type=int,
        default=200,
        metavar="N",
        help="frames in each camera's sequence, at 2 per second (default: 200)",
    )
    arg(
        "--bands",
        metavar="LIST",
        help="cascade policies as LOW-HIGH[@GATE][+cloud] comma-separated, e.g. 0.3-0.8@0.5: "
        "GATE is the scene gate's threshold on the mean absolute difference of 32x32 gray "
        "thumbnails (0-255, the agent's gating.measure mean; default 2.0), or maxN for N on the "
        "most changed cell (gating.measure max_cell); +cloud adds the fewer_than_cloud rule; "
        "default: a built-in grid",
    )
    arg(
        "--count-window",
        type=int,
        default=5,
        metavar="N",
        help="the count rule's window: previous frames whose most frequent count a frame's is "
        "held against (the agent's escalation.detection.count_window; default: 5)",
    )
    arg(
        "--edge-model",
        type=Path,
        default=EDGE_MODEL,
        metavar="MODEL",
        help=f"the edge's detector (default: {EDGE_MODEL.relative_to(REPO)})",
    )
    arg("--threads", type=int, default=1, help="interpreter threads per detector (default: 1)")
    arg(
        "--fps",
        type=float,
        default=2.0,
        help="topology run: frames per second each camera's agent replays at (default: 2, the "
        "rate the set's frames were taken at)",
    )
    arg(
        "--timeout",
        type=float,
        default=180.0,
        help="topology run: seconds to wait for a policy's results to be stored and its "
        "escalations answered, after its agents end (default: 180)",
    )
    arg("--plot", type=Path, metavar="FILE", help="write mAP@0.5 vs bytes as a PNG")
    arg(
        "--workdir",
        type=Path,
        help="write the generated frames (and the topology run's logs and data) here "
        "(default: temp)",
    )
    arg("--output", type=Path, metavar="FILE", help="write the figures as JSON")


def parse_bands(text: str) -> tuple[Any, ...]:
    """``LOW-HIGH[@GATE],...`` -> bands; a clear error naming the bad item."""
    from edgecascade.benchmarks.detect_policies import Band

    bands = []
    for item in (part.strip() for part in text.split(",")):
        try:
            cloud = item.endswith("+cloud")
            span, _, gate = item.removesuffix("+cloud").partition("@")
            low, high = (float(v) for v in span.split("-"))
            measure = "max" if gate.startswith("max") else "mean"
            band = Band(low, high, float(gate.removeprefix("max") or 2.0), measure, cloud=cloud)
        except ValueError:
            raise EdgeCascadeError(
                f"--bands item {item!r} is not LOW-HIGH[@GATE][+cloud]"
            ) from None
        if not 0 <= band.low < band.high <= 1 or band.gate < 0:
            raise EdgeCascadeError(
                f"--bands item {item!r}: needs 0 <= LOW < HIGH <= 1 and GATE >= 0"
            )
        bands.append(band)
    return tuple(bands)


def bench_detect(args: argparse.Namespace) -> dict[str, Any]:
    if not args.offline:
        return run_topology(args)
    from edgecascade.benchmarks.detect_policies import DEFAULT_BANDS

    bands = _bands(args, DEFAULT_BANDS)
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as temp:
        root = args.workdir or Path(temp)
        measured = run_offline(
            root,
            args.seed,
            args.frames_per_camera,
            bands,
            args.threads,
            args.edge_model,
            args.gate_skips,
        )
    return _finish({"mode": "offline", "pairs": {"faces": measured}}, args)


def run_topology(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark through the real topology (:mod:`.detect_topology`): brokers, gateway,
    cloud, a worker running the cloud detector with sliced inference, and per policy one agent
    per camera replaying its frames; scored from the answers the cloud stored."""
    from edgecascade.benchmarks.detect_offline import add_ratios
    from edgecascade.benchmarks.detect_policies import DEFAULT_BANDS
    from edgecascade.benchmarks.detect_readback import add_frame_ratio
    from edgecascade.benchmarks.detect_scene import generate
    from edgecascade.benchmarks.detect_topology import DetectRun, topology_policies

    bands = _bands(args, DEFAULT_BANDS)
    if args.fps <= 0:
        raise EdgeCascadeError(f"--fps {args.fps}: needs to be positive")
    policies = topology_policies(bands)
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as temp:
        root = (args.workdir or Path(temp)).resolve()
        labels = generate(root / "frames", args.seed, args.frames_per_camera)
        run = DetectRun(
            labels, policies, args.edge_model, CLOUD_MODEL, args.fps, args.timeout, root
        )
        measured = run.measure()
    add_ratios(measured)
    add_frame_ratio(measured)
    faces = _set_summary(args.seed, run.document)
    report = {
        "mode": "topology",
        "pairs": {
            "faces": {
                "edge_model": args.edge_model.name,
                "cloud_model": CLOUD_MODEL.name,
                "fps": args.fps,
                "set": faces,
                "policies": measured,
                "targets": judge(measured),
            }
        },
    }
    return _finish(report, args)


def _bands(args: argparse.Namespace, default: tuple[Any, ...]) -> tuple[Any, ...]:
    if args.count_window < 1:
        raise EdgeCascadeError(f"--count-window {args.count_window}: needs at least 1")
    return tuple(
        dataclasses.replace(b, count_window=args.count_window)
        for b in (parse_bands(args.bands) if args.bands else default)
    )


def _set_summary(seed: int, document: dict[str, Any]) -> dict[str, Any]:
    objects = [o for f in document["frames"] for o in f["objects"]]
    small = sum(1 for o in objects if _small(o["box"]))
    return {
        "seed": seed,
        "frames": len(document["frames"]),
        "cameras": len({f["camera"] for f in document["frames"]}),
        "objects": len(objects),
        "small_objects": small,
        "frames_without_faces": sum(1 for f in document["frames"] if not f["objects"]),
    }


def _small(box: list[float]) -> bool:
    from edgecascade.benchmarks.detect_metrics import Truth

    return Truth("face", (box[0], box[1], box[2], box[3])).small


def _finish(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.plot is not None:
        from edgecascade.benchmarks.detect_plot import plot

        plot(report, args.plot)
    report["table"] = format_report(report["pairs"]["faces"], report["mode"])
    return report


def run_offline(
    root: Path,
    seed: int,
    frames_per_camera: int,
    bands: tuple[Any, ...],
    threads: int,
    edge_model: Path = EDGE_MODEL,
    skip: bool = False,
) -> dict[str, Any]:
    """Generate the set into ``root``, run both detectors, simulate every policy."""
    from edgecascade.benchmarks.detect_offline import run_detectors
    from edgecascade.benchmarks.detect_policies import evaluate
    from edgecascade.benchmarks.detect_scene import generate

    if frames_per_camera < 2:
        raise EdgeCascadeError(f"--frames-per-camera {frames_per_camera}: needs at least 2")
    labels = generate(root, seed, frames_per_camera)
    floor = min(b.floor for b in bands)
    runs = run_detectors(labels, edge_model, CLOUD_MODEL, floor, threads)
    policies = evaluate(runs, bands, skip)
    objects = [t for r in runs for t in r.truth]
    return {
        "edge_model": edge_model.name,
        "cloud_model": CLOUD_MODEL.name,
        "set": {
            "seed": seed,
            "frames": len(runs),
            "cameras": len({r.camera for r in runs}),
            "objects": len(objects),
            "small_objects": sum(1 for t in objects if t.small),
            "frames_without_faces": sum(1 for r in runs if not r.truth),
        },
        "edge_score_floor": floor,
        "gate_skips": skip,
        "policies": policies,
        "targets": judge(policies),
    }


def judge(policies: list[dict[str, Any]]) -> dict[str, Any]:
    """Does a cascade policy reach cloud-only's mAP@0.5 minus TARGET_POINTS at no more than
    TARGET_BYTES_RATIO of its bytes? Names the best such policy, or the closest one."""
    cascade = [p for p in policies if p["family"] == "cascade" and p["map50"] is not None]
    within = [p for p in cascade if (p["bytes_ratio"] or 0.0) <= TARGET_BYTES_RATIO]
    best = max(within, key=lambda p: p["map50"], default=None)
    met = best is not None and best["map50_vs_cloud_points"] >= -TARGET_POINTS
    if best is None:
        line = f"target: no cascade policy at <= {TARGET_BYTES_RATIO:.0%} of cloud-only bytes"
    else:
        line = (
            f"target (cloud-only mAP@0.5 - {TARGET_POINTS:g} pt at <= {TARGET_BYTES_RATIO:.0%} "
            f"bytes): {'met' if met else 'NOT met'}; best within the bytes: {best['policy']} "
            f"at {best['map50_vs_cloud_points']:+.1f} pt, {best['bytes_ratio']:.1%} bytes"
        )
    return {
        "map50_points": TARGET_POINTS,
        "bytes_ratio": TARGET_BYTES_RATIO,
        "met": met,
        "best": None if best is None else best["policy"],
        "line": line,
    }


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if value is None else f"{scale * value:.{digits}f}"


def _latencies(p: dict[str, Any]) -> list[str]:
    first, final = p["first_answer_ms"], p["final_answer_ms"]
    return [
        _fmt(p["gated_fraction"], 100, 1),
        f"{_fmt(first['p50'], digits=0)}/{_fmt(first['p95'], digits=0)}",
        f"{_fmt(final['p50'], digits=0)}/{_fmt(final['p95'], digits=0)}",
    ]


def format_report(measured: dict[str, Any], mode: str = "offline") -> str:
    headers = ["policy", "mAP@0.5", "vs cloud pts", "small recall", "P@0.5", "R@0.5"]
    headers += ["escalated %", "bytes ratio"]
    topology = mode == "topology"
    skips = measured.get("gate_skips", False)
    if topology:
        headers += ["gated %", "first p50/p95 ms", "final p50/p95 ms"]
    elif skips:
        headers += ["gated %"]
    rows = [
        [
            p["policy"],
            _fmt(p["map50"]),
            _fmt(p["map50_vs_cloud_points"], digits=1),
            _fmt(p["small_recall"]),
            _fmt(p["precision"]),
            _fmt(p["recall"]),
            _fmt(p["escalated_fraction"], 100, 1),
            _fmt(p["bytes_ratio"]),
            *(_latencies(p) if topology else []),
            *([_fmt(p["gated_fraction"], 100, 1)] if skips and not topology else []),
        ]
        for p in measured["policies"]
    ]
    s = measured["set"]
    return "\n".join(
        [
            (
                f"TOPOLOGY: each policy run by one agent per camera at {measured['fps']:g} fps, "
                "answers read back from the cloud, bytes from the wire"
                if topology
                else "OFFLINE: policies simulated on the detectors' outputs, not run through the "
                "topology"
                + ("; the gates skip unchanged frames as the agent's do" if skips else "")
            ),
            f"set: seed {s['seed']}, {s['frames']} frames from {s['cameras']} cameras, "
            f"{s['objects']} faces ({s['small_objects']} small, area < 32x32 px), "
            f"{s['frames_without_faces']} frames without a face",
            format_table(headers, rows),
            *(
                [
                    "@maxN: the scene gate measures the most changed thumbnail cell "
                    "(gating.measure = max_cell), threshold N; @N: the mean over cells"
                ]
                if any(p.get("gate_measure") == "max" for p in measured["policies"])
                else []
            ),
            measured["targets"]["line"],
        ]
    )
