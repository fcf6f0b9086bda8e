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
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgecascade.benchmarks.table import format_table
from shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from sqlalchemy import Engine

    from shared.messages import ResultMessage

SITE = "bench"
DEVICES = 10
RAW_TRANSACTIONS = 4  # "a few large transactions": the database's best case, not one per row
POLL_S = 0.05
TARGET_RATIO = 0.5  # the project's target: ingest >= half the executemany rate
PROBE_DEVICE = "bench-probe"
# Messages handed to paho and not yet acknowledged. paho numbers them with 16-bit ids as they are
# queued: past 65535 outstanding, ids repeat and the older message is silently never sent.
PUBLISH_WINDOW = 10_000

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
    from cloud.db.rows import result_row
    from edgecascade.benchmarks.messages import sample_result
    from shared.codec import encode
    from shared.dicts import RESULT
    from shared.topics import Kind, topic

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
    from shared.codec import encode
    from shared.messages import BatchedResult, ResultBatchMessage
    from shared.topics import Kind, topic

    batch = ResultBatchMessage(
        results=[BatchedResult(device=device, result=message) for device, message in results]
    )
    return topic(SITE, "gateway", Kind.RESULT_BATCH), encode(batch)


# -- executemany ---------------------------------------------------------------------------------
def _executemany(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from sqlalchemy import insert

    from cloud.db.engine import make_engine
    from cloud.db.migrate import upgrade_engine
    from cloud.db.models import Result

    engine = make_engine(url)
    try:
        upgrade_engine(engine)
        chunk = max(1, -(-len(rows) // RAW_TRANSACTIONS))
        start = time.perf_counter()
        for first in range(0, len(rows), chunk):
            with engine.begin() as conn:
                conn.execute(insert(Result), rows[first : first + chunk])
        seconds = time.perf_counter() - start
        stored = _count_results(engine)
    finally:
        engine.dispose()
    return {
        "rows": len(rows),
        "stored": stored,
        "transactions": -(-len(rows) // chunk),
        "seconds": seconds,
        "rows_per_s": stored / seconds if seconds > 0 else 0.0,
    }


def _count_results(engine: Engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM results")).scalar_one())


# -- ingest --------------------------------------------------------------------------------------
class _Publisher:
    """A plain paho QoS 1 publisher that notes when the broker acknowledged its last message."""

    def __init__(self, port: int) -> None:
        self._expected = 0
        self._acked = 0
        self._lock = threading.Lock()
        self._window = threading.Semaphore(PUBLISH_WINDOW)
        self.all_acked = threading.Event()
        self.acked_at = 0.0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._lock:
            if not self._expected:
                return  # a probe, before the timed run
            self._acked += 1
            self._window.release()
            if self._acked >= self._expected:
                self.acked_at = time.perf_counter()
                self.all_acked.set()

    def send(self, messages: list[tuple[str, bytes]], timeout: float) -> None:
        """Hand every message to paho, at most :data:`PUBLISH_WINDOW` unacknowledged at a time."""
        with self._lock:
            self._expected, self._acked = len(messages), 0
            self.all_acked.clear()
        for wire, payload in messages:
            if not self._window.acquire(timeout=timeout):
                raise RuntimeError(f"the broker acknowledged nothing for {timeout:g} s")
            self.client.publish(wire, payload, qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _ingest(
    url: str,
    messages: list[tuple[str, bytes]],
    rows: int,
    work: Path,
    timeout: float,
    ingest: dict[str, Any],
    backlog: bool = False,
) -> dict[str, Any]:
    """Rows/s through ``edgecascade cloud`` from a private broker into the database at ``url``.

    Live (default): timed from the first publish until every row is stored. ``backlog``: the
    service subscribes, stops, the messages are published while it is away (the broker queues
    them in its persistent session), it starts again; timed from the first message it received
    (``results.received_at``) until every row is stored: the service alone, no publisher running.

    ``ingest`` (the ``[ingest]`` settings) goes to the process in its environment, overriding any
    ``EC_CLOUD_INGEST__*`` of ours: the report names the settings that actually ran.
    """
    from cloud.db.engine import make_engine
    from edgecascade.brokers import MosquittoBroker, free_port
    from edgecascade.processes import ProcessGroup

    broker = MosquittoBroker(work / "broker")
    group = ProcessGroup(work / "logs")
    broker.start()
    publisher: _Publisher | None = None
    http_port = free_port()
    argv = [
        "--log-level",
        "WARNING",
        "cloud",
        "--database-url",
        url,
        "--data-dir",
        str(work / "cloud"),
        "--mqtt-port",
        str(broker.port),
        "--port",
        str(http_port),
    ]
    env = {f"EC_CLOUD_INGEST__{key.upper()}": str(value) for key, value in ingest.items()}
    try:
        cloud = group.spawn_cli("cloud", *argv, env=env)

        def check_alive() -> None:
            if cloud.poll() is not None:
                raise RuntimeError(
                    f"edgecascade cloud exited with {cloud.returncode}:\n{group.log_tail('cloud')}"
                )

        publisher = _Publisher(broker.port)
        poll = make_engine(url)
        try:
            _wait_ingesting(http_port, poll, publisher, check_alive, timeout)
            start = time.perf_counter()
            if backlog:
                group.stop_all()  # its session and shared subscriptions stay with the broker
                publisher.send(messages, timeout)
                publisher.all_acked.wait(timeout)
                cloud = group.spawn_cli("cloud", *argv, env=env)
            else:
                publisher.send(messages, timeout)
            deadline = time.perf_counter() + timeout
            while True:
                stored = _count_results(poll)
                now, wall = time.perf_counter(), time.time()
                if stored >= rows or now > deadline:
                    break
                check_alive()
                time.sleep(POLL_S)
            if backlog:
                published = publisher.acked_at - start if publisher.all_acked.is_set() else None
                seconds = wall - _first_received(poll)
            else:
                publisher.all_acked.wait(max(0.0, deadline - time.perf_counter()))
                published = publisher.acked_at - start if publisher.all_acked.is_set() else None
                seconds = now - start
        finally:
            poll.dispose()
    finally:
        if publisher is not None:
            publisher.close()
        group.stop_all()
        broker.stop()
    return {
        "messages": len(messages),
        "rows": rows,
        "stored": stored,
        "timed_out": stored < rows,
        "seconds": seconds,
        "publish_seconds": published,
        "rows_per_s": stored / seconds if seconds > 0 else 0.0,
    }


def _first_received(engine: Engine) -> float:
    from sqlalchemy import text

    with engine.connect() as conn:
        return float(conn.execute(text("SELECT min(received_at) FROM results")).scalar_one())


def _wait_ingesting(
    http_port: int,
    engine: Engine,
    publisher: _Publisher,
    check_alive: Callable[[], None],
    timeout: float,
) -> None:
    """Until the cloud stores what is published: healthy, then a probe state message stored.

    Healthy means migrated and connected to the broker; the probe (re-sent until it lands) also
    proves the shared subscriptions are in place, so no timed result is published into the void.
    It goes to the ``devices`` table and leaves ``results`` empty.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from shared.codec import encode
    from shared.messages import StateMessage
    from shared.topics import Kind, topic

    deadline = time.monotonic() + timeout
    while not _healthy(http_port):
        check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"edgecascade cloud was not healthy within {timeout:g} s")
        time.sleep(0.1)
    probe = text("SELECT count(*) FROM devices WHERE device_id = :device")
    wire = topic(SITE, PROBE_DEVICE, Kind.STATE)
    while True:
        # Acknowledged before the timed run starts, so its PUBACK is not counted as one of those.
        info = publisher.client.publish(wire, encode(StateMessage(status="online")), qos=1)
        info.wait_for_publish(timeout=5)
        time.sleep(0.2)
        try:
            with engine.connect() as conn:
                if conn.execute(probe, {"device": PROBE_DEVICE}).scalar_one():
                    return
        except SQLAlchemyError:
            pass  # not migrated yet
        check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"edgecascade cloud stored nothing within {timeout:g} s")


def _healthy(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as reply:
            return bool(json.load(reply).get("mqtt"))
    except (OSError, ValueError):  # not listening yet, 503, or not JSON yet
        return False


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
    from cloud.settings import IngestSection

    n, ingest, timeout = len(load.rows), IngestSection().model_dump(), args.timeout
    paths: list[tuple[str, str, Callable[[str, Path], dict[str, Any]]]] = [
        (
            "ingest_batched",
            f"ingest of {n} results in {len(load.batched)} gateway batches",
            lambda url, dir_: _ingest(url, load.batched, n, dir_, timeout, ingest),
        ),
        (
            "ingest_single",
            f"ingest of {n} results, one per message",
            lambda url, dir_: _ingest(url, load.single, n, dir_, timeout, ingest),
        ),
        (
            "ingest_single_backlog",
            f"ingest of {n} results, one per message, from a backlog",
            lambda url, dir_: _ingest(url, load.single, n, dir_, timeout, ingest, backlog=True),
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
    from cloud.settings import IngestSection

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
    table = _table(databases, args.batch_size)
    if args.frames > 0:
        from edgecascade.benchmarks.workers import measure_workers

        workers = measure_workers(args.frames, args.timeout)
        report["reinference"] = workers
        report["two_vs_one_workers_ratio"] = workers["two_vs_one_workers_ratio"]
        report["live_two_vs_one_workers_ratio"] = workers["live_two_vs_one_workers_ratio"]
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
        table += "\n\n" + format_table(
            [
                "mode",
                "workers",
                "frames",
                "verdicts",
                "lost",
                "seconds",
                "frames/s",
                "inference p50 ms",
            ],
            rows,
        )
        table += (
            f"\n2 workers vs 1: {workers['two_vs_one_workers_ratio']:.3f} draining a backlog, "
            f"{workers['live_two_vs_one_workers_ratio']:.3f} live, on {workers['cores']} cores "
            "(target >= 1.7 where cores allow)"
        )
    report["table"] = table
    return report


PATH_KEYS = (
    ("ingest_single", "ingest"),
    ("ingest_single_backlog", "backlog_ingest"),
    ("ingest_batched", "batched_ingest"),
)


def _table(databases: dict[str, dict[str, Any]], batch_size: int) -> str:
    rows: list[list[object]] = []
    notes: list[str] = []
    for name, runs in databases.items():
        if "skipped" in runs:
            rows.append([name, "skipped (see below)", "-", "-", "-", "-", "-", "-", "-"])
            notes.append(f"{name} skipped: {runs['skipped']}")
            continue
        raw = runs["executemany"]
        form = f"executemany, {raw['transactions']} transactions"
        if raw["runs"] > 1:
            form += f", median of {raw['runs']}"
        rows.append(
            [
                name,
                form,
                "-",
                raw["rows"],
                raw["stored"],
                raw["seconds"],
                "-",
                raw["rows_per_s"],
                1.0,
            ]
        )
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
        verdicts = [
            f"{form} {runs[path]['vs_executemany']:.3f} "
            f"({'met' if runs[path]['vs_executemany'] >= TARGET_RATIO else 'not met'})"
            for path, form in (
                ("ingest_single", "single"),
                ("ingest_single_backlog", "single from a backlog"),
                ("ingest_batched", "batched"),
            )
        ]
        notes.append(f"{name}: ingest vs executemany: {', '.join(verdicts)}")
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
    table = format_table(
        [
            "database",
            "path",
            "messages",
            "rows",
            "stored",
            "seconds",
            "published s",
            "rows/s",
            "vs executemany",
        ],
        rows,
    )
    notes.append(
        "vs executemany: an ingest run's rows/s over the mean of the executemany runs just "
        "before and after it; a path's median run is shown"
    )
    notes.append(f"target: ingest >= {TARGET_RATIO:g} x executemany rows/s")
    return table + "\n" + "\n".join(notes)


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
