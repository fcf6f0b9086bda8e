"""``bench outbox``: what ``synchronous=full`` costs against ``normal`` on the storage at hand.

The disk outbox (``shared/outbox``) commits every result before the agent counts it as
accepted. With ``full`` SQLite fsyncs the WAL at every commit, so an accepted result survives a
power cut; with ``normal`` only at checkpoints (see ``shared/outbox/disk.py``). This bench puts
real result messages one at a time (the agent's emit thread) and in groups (the gateway's
intake), in both modes, alternating rounds in the same run, in a folder on the storage to judge
(``--dir``: run it on the device's SD card, not on a tmpfs). Figures under ``_ratio`` compare
the two modes measured in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.table import format_table
from edgecascade.shared.cli import SubParsers

MODES = ("normal", "full")


def add_outbox_parser(benches: SubParsers[argparse.ArgumentParser]) -> None:
    parser = benches.add_parser(
        "outbox",
        help="disk outbox: put throughput with synchronous=full vs normal",
        description=(
            "Put result messages into the disk outbox one by one and in groups, with SQLite "
            "synchronous=full (every commit fsynced: survives a power cut) and normal (fsynced "
            "at checkpoints), alternating rounds; report puts per second, put latency and the "
            "full/normal ratios."
        ),
    )
    arg = parser.add_argument
    arg("--dir", type=Path, default=Path(), help="folder on the storage to measure (default: .)")
    arg("--count", type=int, default=500, help="single puts per round (default: %(default)s)")
    arg("--group", type=int, default=50, help="messages per put_many (default: %(default)s)")
    arg("--groups", type=int, default=100, help="put_many calls per round (default: %(default)s)")
    arg("--rounds", type=int, default=3, help="rounds per mode (default: %(default)s)")
    arg("--output", type=Path, metavar="FILE", help="write the figures as JSON")


def _round(folder: Path, mode: str, args: argparse.Namespace, payload: bytes) -> dict[str, Any]:
    """One round in a fresh outbox file: single puts, then groups; times in seconds."""
    from edgecascade.shared.mqtt import Outgoing
    from edgecascade.shared.outbox import Outbox

    box = Outbox(folder / f"{mode}.db", synchronous="full" if mode == "full" else "normal")
    try:
        latencies = []
        start = time.perf_counter()
        for n in range(args.count):
            t0 = time.perf_counter()
            box.put("result", Outgoing(f"t/{n}", payload), f"s{n}")
            latencies.append(time.perf_counter() - t0)
        single_s = time.perf_counter() - start
        start = time.perf_counter()
        for g in range(args.groups):
            items = [
                ("result", Outgoing(f"t/{g}", payload), f"g{g}.{k}") for k in range(args.group)
            ]
            box.put_many(items)
        group_s = time.perf_counter() - start
    finally:
        box.close()
    for path in folder.glob(f"{mode}.db*"):
        path.unlink()
    latencies.sort()
    return {
        "puts_per_s": args.count / single_s,
        "put_ms_p50": latencies[len(latencies) // 2] * 1000,
        "put_ms_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "grouped_msgs_per_s": args.groups * args.group / group_s,
    }


def _filesystem(path: Path) -> str:
    """The filesystem type of ``path`` from /proc/mounts (Linux), or "unknown"."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best = ("", "unknown")
    for fields in mounts:
        point = fields[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best[1]


def bench_outbox(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.shared.codec import encode

    for name in ("count", "group", "groups", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, not {getattr(args, name)}")
    payload = encode(sample_result(0))
    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for _ in range(args.rounds):
            for mode in MODES:  # alternating, so both see the same state of the machine
                runs[mode].append(_round(folder, mode, args, payload))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    modes = {
        mode: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for mode, rounds in runs.items()
    }
    full, normal = modes["full"], modes["normal"]
    figures: dict[str, Any] = {
        "dir": str(args.dir),
        "filesystem": _filesystem(args.dir),
        "payload_bytes": len(payload),
        "count": args.count,
        "group": args.group,
        "groups": args.groups,
        "rounds": args.rounds,
        "modes": modes,
        "full_vs_normal_put_ratio": full["puts_per_s"] / normal["puts_per_s"],
        "full_vs_normal_grouped_ratio": full["grouped_msgs_per_s"] / normal["grouped_msgs_per_s"],
    }
    rows = [
        [
            mode,
            m["puts_per_s"],
            m["put_ms_p50"],
            m["put_ms_p99"],
            m["grouped_msgs_per_s"],
        ]
        for mode, m in modes.items()
    ]
    figures["table"] = "\n".join(
        [
            format_table(
                ["synchronous", "puts/s", "put p50 ms", "put p99 ms", f"msgs/s in {args.group}s"],
                rows,
            ),
            f"full/normal: puts {figures['full_vs_normal_put_ratio']:.3f}, "
            f"groups {figures['full_vs_normal_grouped_ratio']:.3f} "
            f"({figures['filesystem']} at {args.dir}, {len(payload)} B results, medians of "
            f"{args.rounds} rounds)",
        ]
    )
    return figures
