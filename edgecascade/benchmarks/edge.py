"""``edgecascade bench edge``: the device agent's cost around the model.

Frames: a folder of JPEG or PNG images, or a video file (``--frames``); by default 60 camera-sized
1280x720 JPEG frames made from the committed Fashion-MNIST eval images
(:mod:`~edgecascade.benchmarks.camera_frames`), the size a V4L2 or Picamera2 camera delivers.

In one run, on the same model (a classifier or a detector, by its card), frames and interpreter
thread count, in alternating rounds (``--rounds``: raw, pipeline, raw, pipeline, ...) so that
both see the same share of a machine other work may be using: the raw ``invoke()`` rate on a
prepared tensor; the rate of the agent's full pipeline (read + decode the frame, preprocess,
invoke, postprocess or box decoding, escalation decision, result committed to the disk outbox
and the verdict book), whose three stages run on three threads, and its ratio to the raw rate;
the per-stage breakdown; the peak RSS and peak private memory of a process that reads, decodes
and runs the model on the frames as the agent does; and the CPU an idle agent uses while its
camera delivers nothing.

The pipeline overlaps reading and preprocessing the next frame, and decoding the previous one's
boxes and committing its result (the results waiting together in one transaction), with
``invoke()`` (LiteRT releases the GIL while it runs). That needs a free core: with as many
interpreter threads as cores, the stages compete with the interpreter for the CPU.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.table import format_table

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = [
    REPO / "models" / "fashion" / "fashion_edge_int8.tflite",
    REPO / "models" / "fashion" / "fashion_cloud_int8.tflite",
]
EVAL_SAMPLE = REPO / "data" / "fashion-mnist-eval"
STAGES = ("capture", "preprocess", "invoke", "postprocess", "publish")


def source_settings(frames: Path, **extra: Any) -> Any:
    """A folder of images or a video file, as the agent's source settings."""
    from edgecascade.edge_agent.settings import SourceSettings

    return SourceSettings(kind="video" if frames.is_file() else "folder", path=frames, **extra)


def _raw_rate(model: Path, frames: Path, seconds: float, threads: int) -> tuple[int, float]:
    """Bare ``invoke()`` calls on one prepared tensor for about ``seconds``: (calls, seconds)."""
    from edgecascade.edge_agent.models import load_model
    from edgecascade.edge_agent.sources import open_source

    runtime = load_model(model, threads)
    source, _ = open_source(source_settings(frames), runtime.decode_plan)
    frame = source.read()
    source.close()
    if frame is None:
        raise SystemExit(f"{frames}: no frame could be read")
    tensor = runtime.preprocess(frame.image)
    for _ in range(20):
        runtime.invoke_raw(tensor)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            runtime.invoke_raw(tensor)
        n += 50
    return n, time.perf_counter() - started


def _pipeline(model: Path, frames: Path, limit: int, workdir: Path, threads: int) -> dict[str, Any]:
    """The agent's own loop over ``limit`` frames, no broker (results stay in the outbox)."""
    from edgecascade.brokers import free_port
    from edgecascade.edge_agent.agent import Agent
    from edgecascade.edge_agent.settings import AgentSettings
    from edgecascade.shared.config import MqttSettings

    settings = AgentSettings(
        model=model,
        threads=threads,
        data_dir=workdir,
        gateway_id=None,
        mqtt=MqttSettings(port=free_port()),  # nothing listens: publishing is not measured
        source=source_settings(frames, fps=100_000, loop=True, max_frames=limit),
        telemetry_interval_s=3600,
        drain_timeout_s=0,
    )
    agent = Agent(settings)
    agent.run(threading.Event())
    elapsed = agent.loop_seconds  # the frame loop only: start-up and shutdown are not per frame
    percentiles = agent.timer.percentiles()
    return {
        "frames": agent.stats.frames,
        "seconds": elapsed,
        "stages_ms": {k: v.model_dump() for k, v in percentiles.items()},
    }


_MEMORY_PROBE = """
import resource, sys, threading
from pathlib import Path
from edgecascade.benchmarks.edge import source_settings
from edgecascade.edge_agent.models import infer, load_model
from edgecascade.edge_agent.sources import open_source
def private_kb():
    status = open("/proc/self/status").read().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("RssAnon"))
peak, done = [private_kb()], threading.Event()
def sample():
    while not done.wait(0.002):
        peak[0] = max(peak[0], private_kb())
sampler = threading.Thread(target=sample)
sampler.start()
runtime = load_model(Path(sys.argv[1]), int(sys.argv[3]))
source, _ = open_source(source_settings(Path(sys.argv[2]), loop=True), runtime.decode_plan)
for _ in range(200):
    frame = source.read()
    if frame is None:
        break
    infer(runtime, frame.image)
source.close()
done.set()
sampler.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, max(peak[0], private_kb()) / 1024)
"""


def _peak_memory_mb(model: Path, frames: Path, threads: int) -> tuple[float, float]:
    """Peak RSS and peak private (anonymous) memory, in MB, of a process that reads, decodes
    and classifies 200 frames as the agent does (the private peak sampled every 2 ms).

    RSS also counts the pages of shared libraries (numpy, OpenCV, LiteRT) mapped from disk; how
    many of those are resident depends on the file system the environment lives on, not on
    EdgeCascade, so the private part is reported beside it.
    """
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(model), str(frames), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    peak, private = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(private)


def _idle_cpu_percent(model: Path, seconds: float, workdir: Path) -> tuple[float, float, float]:
    """CPU% and peak RSS of a real agent whose camera (a stream nobody serves) sends nothing."""
    import psutil

    from edgecascade.brokers import free_port

    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "agent",
        "--model",
        str(model),
        "--stream",
        f"http://127.0.0.1:{free_port()}/nothing.mjpg",
        "--no-gateway",
        "--data-dir",
        str(workdir),
        "--mqtt-port",
        str(free_port()),
    ]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(4.0)  # start-up: imports and model load are not idle time
        before = ps.cpu_times()
        time.sleep(seconds)
        after = ps.cpu_times()
        memory = ps.memory_full_info()
        rss, uss = memory.rss / 1e6, memory.uss / 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / seconds, rss, uss


def _decode_ms(model: Path, frames: Path, repeat: int = 30) -> dict[str, Any]:
    """Decode time of a folder's first JPEG at full size and as the agent decodes it for the
    model (its DCT scale and colour, :mod:`edgecascade.edge_agent.decode`); {} without one."""
    from edgecascade.edge_agent.decode import decode_jpeg, jpeg_size
    from edgecascade.edge_agent.models import load_model

    jpegs = [] if frames.is_file() else sorted(frames.rglob("*.jp*g"))
    data = jpegs[0].read_bytes() if jpegs else b""
    size = jpeg_size(data)
    if size is None:
        return {}
    plan = load_model(model, 1).decode_plan(*size)

    def per_frame(reduction: int, gray: bool) -> float:
        decode_jpeg(data, reduction, gray)
        started = time.perf_counter()
        for _ in range(repeat):
            decode_jpeg(data, reduction, gray)
        return (time.perf_counter() - started) * 1000 / repeat

    return {
        "decode_full_ms": per_frame(1, False),
        "decode_for_model_ms": per_frame(plan.reduction, plan.gray),
        "decode_scale": f"1/{plan.reduction}{' gray' if plan.gray else ''}",
    }


def _rates(
    model: Path, frames: Path, threads: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Raw invoke and the agent's pipeline in alternating rounds (raw, pipeline, raw, ...), so
    both see the same share of a machine other work also uses; the rates are the rounds'
    totals, the stage times the last round's."""
    raw_n = raw_s = pipe_n = pipe_s = 0.0
    rounds: list[dict[str, float]] = []
    pipe: dict[str, Any] = {}
    for i in range(args.rounds):
        n, seconds = _raw_rate(model, frames, args.seconds / args.rounds, threads)
        limit = max(1, args.frames_limit // args.rounds)
        pipe = _pipeline(model, frames, limit, workdir / f"round{i}", threads)
        raw_n, raw_s, pipe_n, pipe_s = (
            raw_n + n,
            raw_s + seconds,
            pipe_n + pipe["frames"],
            pipe_s + pipe["seconds"],
        )
        raw, rate = n / seconds, pipe["frames"] / pipe["seconds"]
        rounds.append({"raw_invoke_per_s": raw, "pipeline_frames_per_s": rate, "ratio": rate / raw})
    raw, rate = raw_n / raw_s, pipe_n / pipe_s
    return {
        "raw_invoke_per_s": raw,
        "pipeline_frames_per_s": rate,
        "pipeline_vs_raw_ratio": rate / raw,
        "pipeline_frames": int(pipe_n),
        "rounds": rounds,
        "stages_ms": pipe["stages_ms"],
    }


def _measure(
    model: Path, frames: Path, threads: int, args: argparse.Namespace, workdir: Path
) -> Any:
    rates = _rates(model, frames, threads, args, workdir)
    peak_rss, peak_private = _peak_memory_mb(model, frames, threads)
    return {
        "interpreter_threads": threads,
        **rates,
        "peak_rss_mb": peak_rss,
        "peak_private_mb": peak_private,
        **_decode_ms(model, frames),
    }


def _frames_entry(frames: Path, generated: bool) -> dict[str, Any]:
    from edgecascade.edge_agent.sources import open_source

    source, _ = open_source(source_settings(frames))
    first = source.read()
    source.close()
    if first is None:
        raise SystemExit(f"{frames}: no frame could be read")
    height, width = first.image.shape[:2]
    kind = "video" if frames.is_file() else "folder"
    what = "JPEG made from the Fashion-MNIST eval images" if generated else kind
    return {"path": str(frames), "kind": kind, "width": width, "height": height, "what": what}


def _decode_cell(entry: dict[str, Any]) -> str:
    if "decode_full_ms" not in entry:
        return "-"
    full, model, scale = (
        entry["decode_full_ms"],
        entry["decode_for_model_ms"],
        entry["decode_scale"],
    )
    return f"{full:.2f} -> {model:.2f} ({scale})"


def bench_edge(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.benchmarks.camera_frames import write_camera_frames

    models = args.model or DEFAULT_MODELS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = args.frames or write_camera_frames(EVAL_SAMPLE, Path(tmp) / "camera", 60)
        report: dict[str, Any] = {"frames": _frames_entry(frames, args.frames is None)}
        report["models"] = {}
        for i, (model, threads) in enumerate(itertools.product(models, args.threads)):
            entry = _measure(model, frames, threads, args, Path(tmp) / f"p{i}")
            report["models"][f"{model.name} threads={threads}"] = entry
            report[f"{model.stem}_threads{threads}_pipeline_vs_raw_ratio"] = entry[
                "pipeline_vs_raw_ratio"
            ]
            stage_p50 = [entry["stages_ms"].get(s, {}).get("p50", 0.0) for s in STAGES]
            rows.append(
                [
                    model.name,
                    threads,
                    entry["raw_invoke_per_s"],
                    entry["pipeline_frames_per_s"],
                    entry["pipeline_vs_raw_ratio"],
                    *stage_p50,
                    entry["peak_rss_mb"],
                    entry["peak_private_mb"],
                    _decode_cell(entry),
                ]
            )
        idle, idle_rss, idle_uss = _idle_cpu_percent(
            models[0], args.idle_seconds, Path(tmp) / "idle"
        )
    report["idle_cpu_percent"] = idle
    report["idle_agent_rss_mb"] = idle_rss
    report["idle_agent_uss_mb"] = idle_uss
    headers = ["model", "threads", "invoke/s", "pipeline/s", "ratio"]
    headers += [*(f"{s} p50 ms" for s in STAGES), "peak RSS MB", "peak private MB"]
    headers += ["JPEG decode ms: full -> for the model"]
    f = report["frames"]
    where = f["path"] if args.frames is not None else "made in a temporary folder"
    report["table"] = (
        f"frames: {f['width']}x{f['height']} {f['what']} ({where})\n"
        + format_table(headers, rows)
        + f"\nidle agent (camera sends nothing, {args.idle_seconds:g} s): "
        f"CPU {idle:.2f} %, RSS {idle_rss:.0f} MB, private (USS) {idle_uss:.0f} MB"
    )
    return report


def add_edge_parser(benches: Any) -> None:
    parser = benches.add_parser(
        "edge",
        help="agent pipeline vs raw invoke, per-stage times, RSS, idle CPU",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", type=Path, action="append", help="model (repeatable; default: fashion pair)"
    )
    parser.add_argument(
        "--frames",
        type=Path,
        help="a folder of JPEG/PNG images (ImageFolder layout gives ground truth) or a video "
        "file (default: 60 generated 1280x720 JPEG frames, see above)",
    )
    parser.add_argument(
        "--frames-limit", type=int, default=2000, help="pipeline frames, all rounds (2000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="raw invoke seconds, all rounds (3)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="raw and pipeline measured in this many alternating rounds (3)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="interpreter threads to measure, raw and pipeline alike (default: 1 and all cores)",
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU window (5)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
