"""``edgecascade bench soak``: the demo topology for a long while, at a high rate, with faults, and
what every process and file does over time.

Runs ``edgecascade demo`` (with ``--chaos`` faults unless ``--no-faults``) for ``--minutes`` and
samples, every ``--sample-s``, each process's resident memory and open file descriptors and the
size of every outbox and of the cloud's database. A figure *levels off* when its mean over the
last quarter of the run is at most ``--max-growth`` above its mean over the third quarter (and
above an absolute floor: a few MB, a few descriptors); the outboxes and the processes must level
off, the database grows with the data it keeps and is reported as bytes per stored result. The
closing check is the demo's: every accepted result stored once.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from pathlib import Path
from typing import Any

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import EdgeCascadeError

FLOORS = {"rss_mb": 8.0, "fds": 8.0, "bytes": 4 * 1024 * 1024}


def add_soak_parser(benches: SubParsers[argparse.ArgumentParser]) -> None:
    p = benches.add_parser(
        "soak",
        help="the topology for a long while with faults: memory, descriptors, file sizes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=30.0, help="how long (default: 30)")
    p.add_argument("--devices", type=int, default=3, help="cameras (default: 3)")
    p.add_argument("--fps", type=float, default=20.0, help="frames/s per camera (default: 20)")
    p.add_argument("--sample-s", type=float, default=10.0, help="sampling period (default: 10)")
    p.add_argument("--max-growth", type=float, default=0.10, help="allowed (default: 0.10)")
    p.add_argument("--no-faults", action="store_true", help="no chaos plan, only the load")
    p.add_argument("--seed", type=int, help="seed of the fault plan (default: random)")
    p.add_argument("--workdir", type=Path, help="keep data and logs here (default: temp)")
    p.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
    p.add_argument("--plot", type=Path, metavar="PNG", help="memory and sizes over time")


def _files(workdir: Path) -> dict[str, Path]:
    """The files watched: every outbox and the cloud's SQLite database (each with its WAL)."""
    found = {f"outbox {p.parent.name}": p for p in sorted(workdir.glob("agents/*/outbox.db"))}
    found["outbox gateway"] = workdir / "gateway" / "outbox.db"
    found["downlink gateway"] = workdir / "gateway" / "downlink.db"
    found["cloud database"] = workdir / "cloud" / "cloud.db"
    return found


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _sample(demo: Any, files: dict[str, Path]) -> dict[str, dict[str, float]]:
    import psutil

    out: dict[str, dict[str, float]] = {}
    procs = [(name, proc.pid) for name, proc in demo.group.children if proc.poll() is None]
    procs += [(f"broker {i}", b.proc.pid) for i, b in enumerate(demo.brokers) if b.proc]
    for name, pid in procs:
        try:
            p = psutil.Process(pid)
            out[name] = {"rss_mb": p.memory_info().rss / 1e6, "fds": float(p.num_fds())}
        except (psutil.Error, OSError):
            continue
    for name, path in files.items():
        out[name] = {"bytes": float(_size(path))}
    return out


def _levels(values: list[float], floor: float, max_growth: float) -> tuple[float, bool]:
    """(growth of the last quarter's mean over the third's, whether it levelled off)."""
    n = len(values)
    if n < 8:
        return 1.0, True
    third = statistics.fmean(values[n // 2 : 3 * n // 4])
    last = statistics.fmean(values[3 * n // 4 :])
    ratio = last / third if third > 0 else 1.0
    return ratio, last - third <= max(floor, max_growth * third)


def bench_soak(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from edgecascade.brokers import free_port
    from edgecascade.demo import Demo, DemoPlan
    from edgecascade.demo_chaos import ChaosDemo
    from edgecascade.demo_models import PAIRS

    if args.minutes <= 0 or args.sample_s <= 0 or args.devices < 1:
        raise EdgeCascadeError("--minutes, --sample-s and --devices must be positive")
    pair = PAIRS["fashion"]
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="edgecascade-soak-"))).resolve()
    plan = DemoPlan(
        devices=args.devices,
        duration=args.minutes * 60,
        fps=args.fps,
        site="site1",
        model=pair.edge.resolve(),
        cloud_model=pair.cloud.resolve(),
        frames=pair.frames.resolve(),
        threshold=0.6,
        workdir=workdir,
        http_port=free_port(),
        candidate_model=None,
    )
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    # A fault about every half minute (each part once per three minutes), over the whole run
    # but its last tenth, so the run ends with every part back and a quiet stretch to judge.
    rounds = max(1, int(args.minutes // 3))
    spread = 0.9 * args.minutes * 60
    demo = Demo(plan) if args.no_faults else ChaosDemo(plan, seed, rounds, spread_s=spread)
    demo.out = io.StringIO()  # the demo's progress lines stay out of the table
    series, summary = _run(demo, workdir, args.sample_s)
    return _report(args, series, summary, seed, workdir)


def _run(demo: Any, workdir: Path, sample_s: float) -> tuple[list[dict[str, Any]], dict[str, int]]:
    series: list[dict[str, Any]] = []
    try:
        agents = demo.start()
        started, next_sample = time.monotonic(), 0.0
        while any(demo._running(a) for a in agents) or demo._busy():
            demo._tick()
            demo._check_services()
            now = time.monotonic() - started
            if now >= next_sample:
                series.append({"t": round(now, 1), **_sample(demo, _files(workdir))})
                next_sample += sample_s
            time.sleep(0.25)
        summary: dict[str, int] = demo._finish(agents)
    finally:
        demo.stop()
    return series, summary


def _report(
    args: argparse.Namespace,
    series: list[dict[str, Any]],
    summary: dict[str, int],
    seed: int,
    workdir: Path,
) -> dict[str, Any]:
    from edgecascade.benchmarks.table import format_table

    names = sorted({k for s in series for k in s if k != "t"})
    rows, figures, failed = _judge(series, names, args.max_growth)
    stored = max(1, summary.get("stored", 0))
    db = figures.get("cloud database.bytes", {})
    table = format_table(
        ["what", "figure", "first", "max", "last", "q4/q3_ratio", "levels off"], rows
    ) + (
        f"\nresults {summary.get('results')}, stored {summary.get('stored')}, faults "
        f"{summary.get('faults injected', 0)} (seed {seed}); database "
        f"{db.get('last', 0) / stored:.0f} bytes per stored result"
    )
    report: dict[str, Any] = {
        "table": table,
        "minutes": args.minutes,
        "devices": args.devices,
        "fps": args.fps,
        "seed": seed,
        "summary": summary,
        "figures": figures,
        "series": series,
        "not_levelling_off": failed,
        "workdir": str(workdir),
        "every_result_stored": summary.get("stored") == summary.get("results"),
    }
    if args.plot is not None:
        _plot(series, names, args.plot)
    if failed or not report["every_result_stored"]:
        report["table"] += f"\nFAILED: {', '.join(failed) or 'results missing'}"
    return report


def _judge(
    series: list[dict[str, Any]], names: list[str], max_growth: float
) -> tuple[list[list[object]], dict[str, Any], list[str]]:
    """Table rows, figures and the figures that did not level off."""
    rows: list[list[object]] = []
    figures: dict[str, Any] = {}
    failed: list[str] = []
    for name in names:
        for metric in ("rss_mb", "fds", "bytes"):
            values = [s[name][metric] for s in series if name in s and metric in s[name]]
            if not values:
                continue
            ratio, level = _levels(values, FLOORS[metric], max_growth)
            grows = name == "cloud database"  # keeps the data: grows by design
            figures[f"{name}.{metric}"] = {
                "first": values[0],
                "max": max(values),
                "last": values[-1],
                "growth_ratio": round(ratio, 4),
                "levels_off": level or grows,
            }
            if not (level or grows):
                failed.append(f"{name}.{metric}")
            verdict = "by design" if grows else ("yes" if level else "NO")
            rows.append([name, metric, values[0], max(values), values[-1], ratio, verdict])
    return rows, figures, failed


def _plot(series: list[dict[str, Any]], names: list[str], path: Path) -> None:
    from edgecascade.benchmarks.plotting import pyplot

    plt = pyplot()
    fig, (mem, size) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    t = [s["t"] / 60 for s in series]
    for name in names:
        rss = [s.get(name, {}).get("rss_mb") for s in series]
        if any(v is not None for v in rss):
            mem.plot(t, [v if v is not None else float("nan") for v in rss], label=name)
        b = [s.get(name, {}).get("bytes") for s in series]
        if any(v is not None for v in b):
            size.plot(t, [(v or 0) / 1e6 for v in b], label=name)
    mem.set_ylabel("resident MB")
    size.set_ylabel("file MB")
    size.set_xlabel("minutes")
    for ax in (mem, size):
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
