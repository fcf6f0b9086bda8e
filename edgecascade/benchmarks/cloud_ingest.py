"""The ingest path of ``edgecascade bench cloud``: ``edgecascade cloud`` in its own process,
fed by a private Mosquitto, timed until the database holds every result (see
:mod:`edgecascade.benchmarks.cloud` for what is measured and why)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

if TYPE_CHECKING:
    import subprocess

    from paho.mqtt.properties import Properties
    from sqlalchemy import Engine

    from edgecascade.processes import ProcessGroup

SITE = "bench"
POLL_S = 0.05
PROBE_DEVICE = "bench-probe"
# Messages handed to paho and not yet acknowledged. paho numbers them with 16-bit ids as they are
# queued: past 65535 outstanding, ids repeat and the older message is silently never sent.
PUBLISH_WINDOW = 10_000


def count_results(engine: Engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM results")).scalar_one())


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


@dataclass
class _Service:
    """``edgecascade cloud`` as the benchmark runs it: started again with the same arguments."""

    group: ProcessGroup
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = self.group.spawn_cli("cloud", *self.argv, env=self.env)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"edgecascade cloud exited with {self.proc.returncode}:\n"
                f"{self.group.log_tail('cloud')}"
            )


@dataclass(frozen=True)
class _Timed:
    stored: int
    seconds: float
    published: float | None  # until the broker acknowledged the last message; None: it did not


def ingest(
    url: str,
    messages: list[tuple[str, bytes]],
    rows: int,
    work: Path,
    timeout: float,
    settings: dict[str, Any],
    backlog: bool = False,
) -> dict[str, Any]:
    """Rows/s through ``edgecascade cloud`` from a private broker into the database at ``url``.

    Live (default): timed from the first publish until every row is stored. ``backlog``: the
    service subscribes, stops, the messages are published while it is away (the broker queues
    them in its persistent session), it starts again; timed from the first message it received
    (``results.received_at``) until every row is stored: the service alone, no publisher running.

    ``settings`` (the ``[ingest]`` section) goes to the process in its environment, overriding
    any ``EC_CLOUD_INGEST__*`` of ours: the report names the settings that actually ran.
    """
    from edgecascade.brokers import MosquittoBroker, free_port
    from edgecascade.cloud.db.engine import make_engine
    from edgecascade.processes import ProcessGroup

    broker = MosquittoBroker(work / "broker")
    group = ProcessGroup(work / "logs")
    broker.start()
    publisher: _Publisher | None = None
    http_port = free_port()
    argv = ["--log-level", "WARNING", "cloud", "--database-url", url]
    argv += ["--data-dir", str(work / "cloud"), "--mqtt-port", str(broker.port)]
    argv += ["--port", str(http_port)]
    env = {f"EC_CLOUD_INGEST__{key.upper()}": str(value) for key, value in settings.items()}
    service = _Service(group, argv, env)
    try:
        service.start()
        publisher = _Publisher(broker.port)
        poll = make_engine(url)
        try:
            _wait_ingesting(http_port, poll, publisher, service.check_alive, timeout)
            timed = _timed_run(service, publisher, poll, messages, rows, timeout, backlog)
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
        "stored": timed.stored,
        "timed_out": timed.stored < rows,
        "seconds": timed.seconds,
        "publish_seconds": timed.published,
        "rows_per_s": timed.stored / timed.seconds if timed.seconds > 0 else 0.0,
    }


def _timed_run(
    service: _Service,
    publisher: _Publisher,
    poll: Engine,
    messages: list[tuple[str, bytes]],
    rows: int,
    timeout: float,
    backlog: bool,
) -> _Timed:
    start = time.perf_counter()
    if backlog:
        service.group.stop_all()  # its session and shared subscriptions stay with the broker
        publisher.send(messages, timeout)
        publisher.all_acked.wait(timeout)
        service.start()
    else:
        publisher.send(messages, timeout)
    deadline = time.perf_counter() + timeout
    while True:
        stored = count_results(poll)
        now, wall = time.perf_counter(), time.time()
        if stored >= rows or now > deadline:
            break
        service.check_alive()
        time.sleep(POLL_S)
    if backlog:
        seconds = wall - _first_received(poll)
    else:
        publisher.all_acked.wait(max(0.0, deadline - time.perf_counter()))
        seconds = now - start
    published = publisher.acked_at - start if publisher.all_acked.is_set() else None
    return _Timed(stored, seconds, published)


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

    from edgecascade.shared.codec import encode
    from edgecascade.shared.messages import StateMessage
    from edgecascade.shared.topics import Kind, topic

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
