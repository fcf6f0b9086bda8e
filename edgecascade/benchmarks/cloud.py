"""``edgecascade bench cloud``: result rows/s the cloud ingest stores vs a bare ``executemany``.

For each database, SQLite (a file in a temporary directory, WAL as the cloud configures it) and
PostgreSQL (a private cluster when Debian's server binaries are installed, or a scratch database
on --postgres-url), each path into a freshly migrated database of its own:

- **executemany**: the result rows the ingest would write, built beforehand from the same
  messages, inserted with a plain SQLAlchemy Core ``connection.execute(insert(...), rows)`` in a
  few large transactions: what the database alone sustains, the ceiling of any ingest.
- **ingest, single**: ``edgecascade cloud`` in its own process, default settings, ingesting from
  a private Mosquitto; a plain paho publisher sends every result as its own QoS 1 message, the way
  a device publishes straight to the cloud broker.
- **ingest, single, backlog**: the same messages published while the service is stopped (the
  broker queues them in its persistent session), then drained: the service's own rate, with no
  publisher competing for the cores.
- **ingest, batched**: the same, with the results in gateway batches of --batch-size (what the
  site gateway sends upstream).

An ingest run is timed from the first publish (a backlog run: from the first message received,
``min(results.received_at)``) until ``SELECT count(*) FROM results``, polled every 50 ms on a
connection of the benchmark's own, reaches the number of results: decoding, validation, the
idempotent insert, the commit and the acknowledgements all count. Payloads are encoded before
the clock starts.

Then the re-inference workers (:mod:`edgecascade.benchmarks.workers`): ``--frames`` real
escalations through 1 and then 2 ``edgecascade cloud worker`` processes in one share group,
draining a backlog and live, and ``two_vs_one_workers_ratio`` (from the backlog runs).

Each ingest path runs --repeat times, and each run sits between two executemany runs: its ratio
is its rows/s over the mean of those two, the database's rate at that moment (a shared or
throttled host's speed can drift by half within minutes). A path is reported by its run with
the median ratio.

Reported: rows/s of each path, how long the publisher took to get its messages acknowledged by
the broker (if that is close to the ingest time, the publisher was the limit), and the ratios
``<database>[_batched]_ingest_vs_executemany_ratio``. The project's target is an ingest of at
least half the executemany rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.cloud_ingest import SITE, count_results, ingest
from edgecascade.benchmarks.cloud_table import PATH_KEYS, TARGET_RATIO, table, workers_table
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.shared.messages import ResultMessage

DEVICES = 10
RAW_TRANSACTIONS = 4  # "a few large transactions": the database's best case, not one per row

FreshDatabase = Callable[[str], AbstractContextManager[str]]
"""Given a label, a context that yields the URL of a new, empty database and removes it after."""


class _Skipped(Exception):
    """A database the benchmark cannot run on here; the message says why."""


@dataclass(frozen=True)
class _Workload:
    """The same results in every form a path needs, built before any clock starts."""

    rows: list[dict[str, Any]]  # what the ingest writes for each result
    single: list[tuple[str, bytes]]  # (topic, payload): one result per message
    batched: list[tuple[str, bytes]]  # (topic, payload): gateway batches


def _workload(count: int, batch_size: int) -> _Workload:
    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.cloud.db.rows import result_row
    from edgecascade.shared.codec import encode
    from edgecascade.shared.dicts import RESULT
    from edgecascade.shared.topics import Kind, topic

    results = [(f"cam{i % DEVICES + 1}", sample_result(i)) for i in range(count)]
    now = time.time()
    return _Workload(
        rows=[
            result_row(SITE, device, RESULT.validate_python(message.model_dump()), now)
            for device, message in results
        ],
        single=[(topic(SITE, device, Kind.RESULT), encode(message)) for device, message in results],
        batched=[
            _gateway_batch(results[start : start + batch_size])
            for start in range(0, count, batch_size)
        ],
    )


def _gateway_batch(results: list[tuple[str, ResultMessage]]) -> tuple[str, bytes]:
    """(topic, payload) of one batch as the gateway sends it: several devices, one message."""
    from edgecascade.shared.codec import encode
    from edgecascade.shared.messages import BatchedResult, ResultBatchMessage
    from edgecascade.shared.topics import Kind, topic

    batch = ResultBatchMessage(
        results=[BatchedResult(device=device, result=message) for device, message in results]
    )
    return topic(SITE, "gateway", Kind.RESULT_BATCH), encode(batch)


# -- executemany ---------------------------------------------------------------------------------
def _executemany(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from sqlalchemy import insert

    from edgecascade.cloud.db.engine import make_engine
    from edgecascade.cloud.db.migrate import upgrade_engine
    from edgecascade.cloud.db.models import Result

    engine = make_engine(url)
    try:
        upgrade_engine(engine)
        chunk = max(1, -(-len(rows) // RAW_TRANSACTIONS))
        start = time.perf_counter()
        for first in range(0, len(rows), chunk):
            with engine.begin() as conn:
                conn.execute(insert(Result), rows[first : first + chunk])
        seconds = time.perf_counter() - start
        stored = count_results(engine)
    finally:
        engine.dispose()
    return {
        "rows": len(rows),
        "stored": stored,
        "transactions": -(-len(rows) // chunk),
        "seconds": seconds,
        "rows_per_s": stored / seconds if seconds > 0 else 0.0,
    }


# -- databases -----------------------------------------------------------------------------------
def _sqlite(work: Path) -> FreshDatabase:
    @contextmanager
    def fresh(label: str) -> Iterator[str]:
        yield f"sqlite:///{work / label / 'cloud.db'}"

    return fresh


@contextmanager
def _postgres(args: argparse.Namespace) -> Iterator[FreshDatabase]:
    """Scratch databases on --postgres-url, else on a private cluster; :class:`_Skipped` when
    there is neither."""
    from edgecascade.postgres import PostgresServer, find_server_binaries, scratch_database

    def on(server_url: str) -> FreshDatabase:
        return lambda label: scratch_database(server_url, "ec_bench_")

    if args.postgres_url:
        yield on(args.postgres_url)
        return
    bindir = find_server_binaries()
    if bindir is None:
        raise _Skipped("no PostgreSQL server binaries (initdb) found; pass --postgres-url URL")
    with PostgresServer(bindir) as server_url:
        yield on(server_url)


def _measure(
    name: str, fresh: FreshDatabase, load: _Workload, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Every ingest path ``args.repeat`` times, each run between two executemany runs.

    A shared or throttled host's speed drifts within minutes, so an ingest run is compared with
    the database's rate at that moment: the mean of the executemany runs just before and after it
    (``vs_executemany``). Each path is reported by its run with the median such ratio; every
    run's rate and ratio are kept. Every run writes into a new database.
    """
    from edgecascade.cloud.settings import IngestSection

    n, settings, timeout = len(load.rows), IngestSection().model_dump(), args.timeout
    paths: list[tuple[str, str, Callable[[str, Path], dict[str, Any]]]] = [
        (
            "ingest_batched",
            f"ingest of {n} results in {len(load.batched)} gateway batches",
            lambda url, dir_: ingest(url, load.batched, n, dir_, timeout, settings),
        ),
        (
            "ingest_single",
            f"ingest of {n} results, one per message",
            lambda url, dir_: ingest(url, load.single, n, dir_, timeout, settings),
        ),
        (
            "ingest_single_backlog",
            f"ingest of {n} results, one per message, from a backlog",
            lambda url, dir_: ingest(url, load.single, n, dir_, timeout, settings, backlog=True),
        ),
    ]
    raw: list[dict[str, Any]] = []

    def executemany(of: str) -> dict[str, Any]:
        _progress(f"{name}: executemany of {n} rows in {RAW_TRANSACTIONS} transactions{of} ...")
        with fresh(f"{name}-raw-{len(raw)}") as url:
            raw.append(_executemany(url, load.rows))
        return raw[-1]

    runs: dict[str, list[dict[str, Any]]] = {path: [] for path, _, _ in paths}
    before = executemany("")
    for round_ in range(1, args.repeat + 1):
        of = f" (round {round_} of {args.repeat})" if args.repeat > 1 else ""
        for path, what, run in paths:
            _progress(f"{name}: {what}{of} ...")
            label = f"{name}-{round_}-{path}"
            with fresh(label) as url:
                measured = run(url, work / label)
            after = executemany(of)
            base = (before["rows_per_s"] + after["rows_per_s"]) / 2
            measured["executemany_rows_per_s"] = base
            measured["vs_executemany"] = measured["rows_per_s"] / base if base else 0.0
            runs[path].append(measured)
            before = after
    report = {path: _median(path_runs, "vs_executemany") for path, path_runs in runs.items()}
    return {"executemany": _median(raw, "rows_per_s"), **report}


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key`` (of an even number, the lower middle), plus every run's
    rate and ``key``."""
    ordered = sorted(runs, key=lambda run: float(run[key]))
    return {
        **ordered[(len(ordered) - 1) // 2],
        "runs": len(runs),
        "rows_per_s_runs": [run["rows_per_s"] for run in runs],
        f"{key}_runs": [run[key] for run in runs],
    }


def bench_cloud(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.cloud.settings import IngestSection

    for flag, value in (
        ("--results", args.results),
        ("--batch-size", args.batch_size),
        ("--repeat", args.repeat),
    ):
        if value < 1:
            raise EdgeCascadeError(f"{flag} must be at least 1, got {value}")
    load = _workload(args.results, args.batch_size)
    databases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        databases["sqlite"] = _measure("sqlite", _sqlite(work), load, work, args)
        if args.skip_postgres:
            databases["postgresql"] = {"skipped": "--skip-postgres"}
        else:
            try:
                with _postgres(args) as fresh:
                    databases["postgresql"] = _measure("postgresql", fresh, load, work, args)
            except _Skipped as exc:
                _progress(f"postgresql: skipped: {exc}")
                databases["postgresql"] = {"skipped": str(exc)}

    report: dict[str, Any] = {
        "results": args.results,
        "batch_size": args.batch_size,
        "devices": DEVICES,
        "executemany_transactions": RAW_TRANSACTIONS,
        "repeat": args.repeat,
        "ingest_settings": IngestSection().model_dump(),
        "target_ratio": TARGET_RATIO,
        **databases,
    }
    for name, runs in databases.items():
        if "skipped" in runs:
            continue
        for path, key in PATH_KEYS:
            report[f"{name}_{key}_vs_executemany_ratio"] = runs[path]["vs_executemany"]
    text = table(databases, args.batch_size)
    if args.frames > 0:
        from edgecascade.benchmarks.workers import measure_workers

        workers = measure_workers(args.frames, args.timeout)
        report["reinference"] = workers
        report["two_vs_one_workers_ratio"] = workers["two_vs_one_workers_ratio"]
        report["live_two_vs_one_workers_ratio"] = workers["live_two_vs_one_workers_ratio"]
        text += "\n\n" + workers_table(workers)
    report["table"] = text
    return report


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def add_cloud_parser(benches: Any) -> None:
    parser = benches.add_parser(
        "cloud",
        help="rows/s the cloud ingest stores vs a bare executemany, SQLite and PostgreSQL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=int, default=40_000, help="results per path (40000)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of every ingest path, each between two executemany runs and compared with "
        "their mean, each on a new database; a path is reported by its median ratio (3)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="results per gateway batch (100)"
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        help="an existing PostgreSQL server (any database on it) to create scratch databases "
        "on, instead of a private cluster from the local server binaries",
    )
    parser.add_argument("--skip-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument(
        "--frames",
        type=int,
        default=5000,
        help="escalations per worker run (5000); 0 skips the re-inference workers",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per ingest run, s (300)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
