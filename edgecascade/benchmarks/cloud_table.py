"""The table ``edgecascade bench cloud`` prints: each database's paths, the ratios against
executemany and whether the target is met, and the re-inference workers' runs."""

from __future__ import annotations

from typing import Any

from edgecascade.benchmarks.table import format_table

TARGET_RATIO = 0.5  # the project's target: ingest >= half the executemany rate
PATH_KEYS = (
    ("ingest_single", "ingest"),
    ("ingest_single_backlog", "backlog_ingest"),
    ("ingest_batched", "batched_ingest"),
)


HEADERS = [
    "database",
    "path",
    "messages",
    "rows",
    "stored",
    "seconds",
    "published s",
    "rows/s",
    "vs executemany",
]


def table(databases: dict[str, dict[str, Any]], batch_size: int) -> str:
    rows: list[list[object]] = []
    notes: list[str] = []
    for name, runs in databases.items():
        if "skipped" in runs:
            rows.append([name, "skipped (see below)", "-", "-", "-", "-", "-", "-", "-"])
            notes.append(f"{name} skipped: {runs['skipped']}")
            continue
        rows += _database_rows(name, runs, batch_size)
        notes += _database_notes(name, runs)
    notes.append(
        "vs executemany: an ingest run's rows/s over the mean of the executemany runs just "
        "before and after it; a path's median run is shown"
    )
    notes.append(f"target: ingest >= {TARGET_RATIO:g} x executemany rows/s")
    return format_table(HEADERS, rows) + "\n" + "\n".join(notes)


def _database_rows(name: str, runs: dict[str, Any], batch_size: int) -> list[list[object]]:
    raw = runs["executemany"]
    form = f"executemany, {raw['transactions']} transactions"
    if raw["runs"] > 1:
        form += f", median of {raw['runs']}"
    rows: list[list[object]] = [
        [name, form, "-", raw["rows"], raw["stored"], raw["seconds"], "-", raw["rows_per_s"], 1.0]
    ]
    labels = {
        "ingest_single": "ingest, 1 result/message",
        "ingest_single_backlog": "ingest, 1 result/message, backlog",
        "ingest_batched": f"ingest, batches of {batch_size}",
    }
    for path, label in labels.items():
        run = runs[path]
        published = "-" if run["publish_seconds"] is None else run["publish_seconds"]
        rows.append(
            [
                name,
                label,
                run["messages"],
                run["rows"],
                run["stored"],
                run["seconds"],
                published,
                run["rows_per_s"],
                run["vs_executemany"],
            ]
        )
    return rows


def _database_notes(name: str, runs: dict[str, Any]) -> list[str]:
    verdicts = [
        f"{form} {runs[path]['vs_executemany']:.3f} "
        f"({'met' if runs[path]['vs_executemany'] >= TARGET_RATIO else 'not met'})"
        for path, form in (
            ("ingest_single", "single"),
            ("ingest_single_backlog", "single from a backlog"),
            ("ingest_batched", "batched"),
        )
    ]
    notes = [f"{name}: ingest vs executemany: {', '.join(verdicts)}"]
    if runs["ingest_batched"]["runs"] > 1:
        rounds = "; ".join(
            f"{form} " + ", ".join(f"{r:.3f}" for r in runs[path]["vs_executemany_runs"])
            for path, form in (("ingest_single", "single"), ("ingest_batched", "batched"))
        )
        notes.append(f"{name}: each round's ratio: {rounds}")
    notes.extend(
        f"{name} {path}: TIMED OUT after {runs[path]['seconds']:.0f} s with "
        f"{runs[path]['stored']} of {runs[path]['rows']} rows stored"
        for path, _ in PATH_KEYS
        if runs[path]["timed_out"]
    )
    return notes


def workers_table(workers: dict[str, Any]) -> str:
    """The re-inference workers' runs (:mod:`edgecascade.benchmarks.workers`) and the speed-up."""
    rows = [
        [
            mode,
            run["workers"],
            run["frames"],
            run[mode]["verdicts"],
            run[mode]["lost"],
            run[mode]["seconds"],
            run[mode]["frames_per_s"],
            run[mode]["inference_ms_p50"],
        ]
        for mode in ("backlog", "live")
        for run in (workers["one_worker"], workers["two_workers"])
    ]
    headers = ["mode", "workers", "frames", "verdicts", "lost", "seconds", "frames/s"]
    return format_table([*headers, "inference p50 ms"], rows) + (
        f"\n2 workers vs 1: {workers['two_vs_one_workers_ratio']:.3f} draining a backlog, "
        f"{workers['live_two_vs_one_workers_ratio']:.3f} live, on {workers['cores']} cores "
        "(target >= 1.7 where cores allow)"
    )
