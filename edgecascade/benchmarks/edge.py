"""``edgecascade bench edge``: the device agent's cost around the model.

In one run, on the same model and frames: the raw ``invoke()`` rate on a prepared tensor; the rate
of the full per-frame path (read + decode the frame, preprocess, invoke, postprocess, escalation
decision, result committed to the disk outbox and the verdict book); the per-stage breakdown;
the peak RSS of an agent process with the model loaded; and the CPU an idle agent uses while its
camera delivers nothing.
"""

from __future__ import annotations

import argparse
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
STAGES = ("capture", "preprocess", "invoke", "postprocess", "publish")


def _raw_rate(model: Path, frames: Path, seconds: float) -> float:
    import cv2
    import numpy as np

    from shared.runtime.runtime import ModelRuntime

    runtime = ModelRuntime.load(model)
    image = cv2.imread(str(next(frames.rglob("*.png"))), cv2.IMREAD_UNCHANGED)
    tensor = runtime.preprocess(np.asarray(image, dtype=np.uint8))
    for _ in range(20):
        runtime.invoke_raw(tensor)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            runtime.invoke_raw(tensor)
        n += 50
    return n / (time.perf_counter() - started)


def _pipeline(model: Path, frames: Path, limit: int, workdir: Path) -> dict[str, Any]:
    """The agent's own loop over ``limit`` frames, no broker (results stay in the outbox)."""
    from edge_agent.agent import Agent
    from edge_agent.settings import AgentSettings, SourceSettings
    from edgecascade.brokers import free_port
    from shared.config import MqttSettings

    settings = AgentSettings(
        model=model,
        data_dir=workdir,
        gateway_id=None,
        mqtt=MqttSettings(port=free_port()),  # nothing listens: publishing is not measured
        source=SourceSettings(path=frames, fps=100_000, loop=True, max_frames=limit),
        telemetry_interval_s=3600,
        drain_timeout_s=0,
    )
    agent = Agent(settings)
    agent.run(threading.Event())
    elapsed = agent.loop_seconds  # the frame loop only: start-up and shutdown are not per frame
    percentiles = agent.timer.percentiles()
    return {
        "frames": agent.stats.frames,
        "rate": agent.stats.frames / elapsed,
        "stages_ms": {k: v.model_dump() for k, v in percentiles.items()},
    }


_RSS_PROBE = """
import resource, sys, numpy as np, cv2
from pathlib import Path
from shared.runtime.runtime import ModelRuntime
runtime = ModelRuntime.load(Path(sys.argv[1]))
for path in sorted(Path(sys.argv[2]).rglob("*.png"))[:200]:
    runtime.classify(np.asarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), dtype=np.uint8))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _peak_rss_mb(model: Path, frames: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(model), str(frames)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def _idle_cpu_percent(model: Path, seconds: float, workdir: Path) -> tuple[float, float]:
    """CPU% and peak RSS of a real agent whose camera (a stream nobody serves) sends nothing."""
    import psutil

    from edgecascade.brokers import free_port

    argv = [
        sys.executable, "-m", "edgecascade", "agent", "--model", str(model),
        "--stream", f"http://127.0.0.1:{free_port()}/nothing.mjpg", "--no-gateway",
        "--data-dir", str(workdir), "--mqtt-port", str(free_port()),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(4.0)  # start-up: imports and model load are not idle time
        before = ps.cpu_times()
        time.sleep(seconds)
        after = ps.cpu_times()
        rss = ps.memory_info().rss / 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / seconds, rss


def bench_edge(args: argparse.Namespace) -> dict[str, Any]:
    frames = args.frames or REPO / "data" / "fashion-mnist-eval"
    models = args.model or DEFAULT_MODELS
    report: dict[str, Any] = {"frames_dir": str(frames), "models": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, model in enumerate(models):
            raw = _raw_rate(model, frames, args.seconds)
            pipe = _pipeline(model, frames, args.frames_limit, Path(tmp) / f"p{i}")
            entry = {
                "raw_invoke_per_s": raw,
                "pipeline_frames_per_s": pipe["rate"],
                "pipeline_vs_raw_ratio": pipe["rate"] / raw,
                "pipeline_frames": pipe["frames"],
                "stages_ms": pipe["stages_ms"],
                "peak_rss_mb": _peak_rss_mb(model, frames),
            }
            report["models"][model.name] = entry
            stage_p50 = [entry["stages_ms"].get(s, {}).get("p50", 0.0) for s in STAGES]
            rows.append([model.name, raw, pipe["rate"], entry["pipeline_vs_raw_ratio"],
                         *stage_p50, entry["peak_rss_mb"]])  # fmt: skip
        idle, idle_rss = _idle_cpu_percent(models[0], args.idle_seconds, Path(tmp) / "idle")
    report["idle_cpu_percent"] = idle
    report["idle_agent_rss_mb"] = idle_rss
    headers = ["model", "invoke/s", "pipeline/s", "ratio", *(f"{s} p50 ms" for s in STAGES),
               "peak RSS MB"]  # fmt: skip
    report["table"] = (
        format_table(headers, rows)
        + f"\nidle agent (camera sends nothing, {args.idle_seconds:g} s): "
        f"CPU {idle:.2f} %, RSS {idle_rss:.0f} MB"
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
    parser.add_argument("--frames", type=Path, help="image folder (default: the eval sample)")
    parser.add_argument("--frames-limit", type=int, default=2000, help="pipeline frames (2000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="raw invoke seconds (3)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle CPU window (5)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
