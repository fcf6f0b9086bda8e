"""``edgecascade bench load``: M devices at F fps through one gateway and the cloud, F raised step
by step until loss or latency breaks.

What runs, all on this machine: a site Mosquitto, ``edgecascade gateway`` (its own process), a
cloud Mosquitto and ``edgecascade cloud`` (its own process, storing into SQLite or PostgreSQL).
The devices are simulated: one paho client per device publishes valid result messages
(:mod:`shared.messages`, the size and shape of an agent's) at QoS 1, paced together at
``devices x fps`` results/s. No model runs, so this measures the gateway + cloud path, not the
agents; the publisher shares the machine's cores with everything it measures.

Each step publishes for ``--step-seconds``, then waits up to ``--drain-seconds`` for the step's
results to be stored. Per step:

- **offered**: results published, and the rate the publisher actually held;
- **delivered**: results of the step stored in the ``results`` table by the end of the drain
  window; **loss** = offered - delivered;
- **latency**: end to end, from the device's publish to the cloud ingest receiving the result
  (``results.received_at``; the row commits right after), p50 and p99.

A step *holds* when its loss is zero and its p99 is within ``--max-p99-ms``; the rate is raised
until a step does not hold (or the publisher cannot offer the rate). Reported: every step and
the highest rate held.
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
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgecascade.benchmarks.load_report import load_report
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    import subprocess

    from sqlalchemy import Engine

    from edgecascade.processes import ProcessGroup

SITE = "load"
POLL_S = 0.2
DEVICE_WINDOW = 5_000  # outstanding QoS 1 messages per device client, under paho's 16-bit ids
OFFERED_SHORTFALL = 0.9  # a publisher below 90 % of the offered rate is the limit, not the path


class _Devices:
    """One paho client per simulated device; :meth:`publish` paces them together."""

    def __init__(self, port: int, devices: int) -> None:
        self.clients: list[paho.Client] = []
        self.windows: list[threading.Semaphore] = []
        for i in range(devices):
            window = threading.Semaphore(DEVICE_WINDOW)
            client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id=f"{SITE}-cam{i + 1}", protocol=paho.MQTTv5
            )
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            client.on_publish = lambda *args, w=window: w.release()
            client.connect("127.0.0.1", port)
            client.loop_start()
            self.clients.append(client)
            self.windows.append(window)

    def publish(self, messages: list[tuple[str, str, bytes]], rate: float) -> dict[str, float]:
        """Send ``(msg_id, topic, payload)`` at ``rate`` per second, round robin over the
        devices; returns each message's send time (wall clock, as the ingest stamps arrivals)."""
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for n, (msg_id, wire, payload) in enumerate(messages):
            pause = start + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            device = n % len(self.clients)
            if not self.windows[device].acquire(timeout=60):
                raise EdgeCascadeError("the site broker acknowledged nothing for 60 s")
            sent[msg_id] = time.time()
            self.clients[device].publish(wire, payload, qos=1)
        return sent

    def close(self) -> None:
        for client in self.clients:
            client.loop_stop()
            client.disconnect()


def _step_messages(step: int, count: int, devices: int) -> list[tuple[str, str, bytes]]:
    """The step's results, built before its clock starts; device i publishes every i-th one."""
    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.shared.codec import encode
    from edgecascade.shared.topics import Kind, topic

    out = []
    for n in range(count):
        message = sample_result(n).model_copy(update={"frame_id": f"step{step}-{n}"})
        wire = topic(SITE, f"cam{n % devices + 1}", Kind.RESULT)
        out.append((message.msg_id, wire, encode(message)))
    return out


def _arrivals(engine: Engine, step: int) -> dict[str, float]:
    """``msg_id -> received_at`` of the step's stored results."""
    from sqlalchemy import text

    sql = text("SELECT msg_id, received_at FROM results WHERE frame_id LIKE :pattern")
    with engine.connect() as conn:
        return {str(m): float(r) for m, r in conn.execute(sql, {"pattern": f"step{step}-%"})}


def _count(engine: Engine) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM results")).scalar_one())


def _run_step(
    step: int, fps: float, devices: _Devices, engine: Engine, args: argparse.Namespace
) -> dict[str, Any]:
    import numpy as np

    rate = fps * args.devices
    messages = _step_messages(step, int(rate * args.step_seconds), args.devices)
    before = _count(engine)
    begun = time.perf_counter()
    sent = devices.publish(messages, rate)
    published_s = time.perf_counter() - begun
    deadline = time.monotonic() + args.drain_seconds
    while _count(engine) < before + len(messages) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    arrived = _arrivals(engine, step)
    latencies = np.array([(arrived[i] - t) * 1000 for i, t in sent.items() if i in arrived])
    # n messages paced at the rate span (n - 1) intervals: the last one goes out at (n - 1) / rate.
    held_rate = (len(messages) - 1) / published_s if published_s > 0 else 0.0
    p50 = float(np.percentile(latencies, 50)) if len(latencies) else None
    p99 = float(np.percentile(latencies, 99)) if len(latencies) else None
    lost = len(messages) - len(arrived)
    return {
        "fps_per_device": fps,
        "offered_per_s": rate,
        "published_per_s": held_rate,
        "offered": len(messages),
        "delivered": len(arrived),
        "lost": lost,
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "publisher_limited": held_rate < OFFERED_SHORTFALL * rate,
        "held": lost == 0 and p99 is not None and p99 <= args.max_p99_ms,
    }


@contextmanager
def _database(args: argparse.Namespace, work: Path) -> Iterator[str]:
    """The cloud's database URL: a SQLite file, or a scratch PostgreSQL database (on
    ``--postgres-url``, else on a private cluster from the Debian server binaries)."""
    if args.database == "sqlite":
        yield f"sqlite:///{work / 'cloud.db'}"
        return
    from edgecascade.postgres import PostgresServer, find_server_binaries, scratch_database

    if args.postgres_url:
        with scratch_database(args.postgres_url, "ec_load_") as url:
            yield url
        return
    bindir = find_server_binaries()
    if bindir is None:
        raise EdgeCascadeError(
            "--database postgresql: no PostgreSQL server binaries (initdb) found; "
            "install the postgresql package or pass --postgres-url URL"
        )
    with PostgresServer(bindir) as server, scratch_database(server, "ec_load_") as url:
        yield url


def _wait_ready(
    http_port: int, site_port: int, check_alive: Callable[[], None], timeout: float
) -> None:
    """Until the cloud's ingest is connected and the gateway's state on the site broker says
    online (it subscribes first), so no step publishes into the void."""
    from edgecascade.benchmarks.gateway import wait_gateway_online

    deadline = time.monotonic() + timeout
    while True:
        check_alive()
        try:
            url = f"http://127.0.0.1:{http_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                if json.load(reply).get("mqtt"):
                    break
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise EdgeCascadeError(f"edgecascade cloud was not healthy within {timeout:g} s")
        time.sleep(0.2)
    wait_gateway_online(site_port, timeout, site=SITE)


def _steps(args: argparse.Namespace, work: Path, url: str) -> list[dict[str, Any]]:
    from edgecascade.brokers import MosquittoBroker, free_port
    from edgecascade.cloud.db.engine import make_engine
    from edgecascade.processes import ProcessGroup

    site, cloud = MosquittoBroker(work / "site"), MosquittoBroker(work / "cloud")
    group = ProcessGroup(work / "logs")
    site.start()
    cloud.start()
    devices: _Devices | None = None
    engine = make_engine(url)
    try:
        http_port = free_port()
        procs = _spawn_path(group, args, work, url, (site.port, cloud.port, http_port))

        def check_alive() -> None:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise EdgeCascadeError(
                        f"edgecascade {name} exited with {proc.returncode}:\n{group.log_tail(name)}"
                    )

        _wait_ready(http_port, site.port, check_alive, args.timeout)
        devices = _Devices(site.port, args.devices)
        return _step_up(args, devices, engine, check_alive)
    finally:
        if devices is not None:
            devices.close()
        engine.dispose()
        group.stop_all()
        site.stop()
        cloud.stop()


def _spawn_path(
    group: ProcessGroup,
    args: argparse.Namespace,
    work: Path,
    url: str,
    ports: tuple[int, int, int],
) -> dict[str, subprocess.Popen[bytes]]:
    """``edgecascade cloud`` and ``edgecascade gateway`` between the brokers on ``ports``
    (site MQTT, cloud MQTT, then the cloud's HTTP)."""
    site_port, cloud_port, http_port = ports
    cloud = ["cloud", "--database-url", url, "--data-dir", str(work / "cloud")]
    cloud += ["--mqtt-port", str(cloud_port), "--port", str(http_port)]
    gateway = ["gateway", "--site", SITE, "--data-dir", str(work / "gateway")]
    gateway += ["--site-mqtt-port", str(site_port), "--cloud-mqtt-port", str(cloud_port)]
    gateway += ["--batch-linger-ms", str(args.linger_ms)]
    # The gateway as docs/BENCHMARKS.md measured it: plain JSON batches (the default until
    # batch.compress was turned on; compressing costs the gateway CPU this bench loads).
    plain = {"EC_GATEWAY_BATCH__COMPRESS": "false"}
    return {
        "cloud": group.spawn_cli("cloud", "--log-level", "WARNING", *cloud),
        "gateway": group.spawn_cli("gateway", "--log-level", "WARNING", *gateway, env=plain),
    }


def _step_up(
    args: argparse.Namespace, devices: _Devices, engine: Engine, check_alive: Callable[[], None]
) -> list[dict[str, Any]]:
    """Every step of ``--fps`` in turn, until one does not hold or the publisher is the limit."""
    steps: list[dict[str, Any]] = []
    for n, fps in enumerate(args.fps):
        rate = args.devices * fps
        _progress(
            f"step {n + 1}: {args.devices} devices x {fps:g} fps = {rate:g} results/s "
            f"for {args.step_seconds:g} s ..."
        )
        steps.append(_run_step(n, fps, devices, engine, args))
        check_alive()
        if not steps[-1]["held"] or steps[-1]["publisher_limited"]:
            break
    return steps


def bench_load(args: argparse.Namespace) -> dict[str, Any]:
    _check(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with _database(args, work) as url:
            steps = _steps(args, work, url)
    return load_report(args, steps)


def _check(args: argparse.Namespace) -> None:
    """Clear errors for options that cannot make a run."""
    if args.devices < 1:
        raise EdgeCascadeError(f"--devices must be at least 1, got {args.devices}")
    for fps in args.fps:
        if fps <= 0:
            raise EdgeCascadeError(f"--fps values must be positive, got {fps:g}")
    if list(args.fps) != sorted(set(args.fps)):
        raise EdgeCascadeError(f"--fps must be rising step by step, got {args.fps}")
    for flag in ("step_seconds", "drain_seconds", "max_p99_ms", "timeout"):
        if getattr(args, flag) <= 0:
            name = "--" + flag.replace("_", "-")
            raise EdgeCascadeError(f"{name} must be positive, got {getattr(args, flag):g}")
    if args.linger_ms < 0:
        raise EdgeCascadeError(f"--linger-ms must not be negative, got {args.linger_ms:g}")


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def add_load_parser(benches: Any) -> None:
    parser = benches.add_parser(
        "load",
        help="M simulated devices at rising fps through a gateway and the cloud: rate held",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=int, default=20, help="simulated devices (20)")
    parser.add_argument(
        "--fps",
        type=float,
        nargs="+",
        default=[5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 120.0, 160.0],
        metavar="F",
        help="results per second per device, one step each, rising (5 10 20 40 60 80 120 160)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=10.0, help="publishing time per step (10)"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=10.0,
        help="after a step, wait this long for its results to be stored; what is not is lost (10)",
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=1000.0,
        help="latency bound, ms: a step holds only if its p99 publish-to-cloud latency is "
        "within it (1000)",
    )
    parser.add_argument(
        "--linger-ms", type=float, default=200.0, help="the gateway's batch linger (200)"
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the cloud's store (sqlite); postgresql uses --postgres-url or a private cluster",
    )
    parser.add_argument("--postgres-url", metavar="URL", help="PostgreSQL server to use")
    parser.add_argument("--timeout", type=float, default=120.0, help="start-up wait, seconds")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
