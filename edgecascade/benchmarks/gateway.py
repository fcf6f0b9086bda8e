"""``edgecascade bench gateway``: results per second through the site gateway vs the bare broker.

In one run, with the same publisher and the same kind of result messages (several devices, QoS 1):

- **raw**: a plain paho publisher -> one Mosquitto -> a plain paho subscriber;
- **gateway**: the same publisher -> site Mosquitto -> ``edgecascade gateway`` (its own process:
  validation, de-duplication, disk outbox, batching) -> cloud Mosquitto -> the same subscriber.

Each path runs three ways:

- **flood**: every result published as fast as the broker acknowledges, consumed live; results
  per second end to end. One Python publisher drives both paths, so when the gateway keeps up
  this is the publisher's rate on both and the ratio is about 1.
- **drain**: the results are published while the consumer (the raw subscriber, or the gateway)
  is away and wait in the broker for its persistent session; then it comes back, and the rate
  from its return (the subscriber's CONNACK; the gateway's "online" state on the cloud broker,
  published before it subscribes on the site) to the last arrival is what the consumer alone
  sustains: the gateway's own capacity against the bare subscriber's.
- **paced**: ``--paced-rate`` results/s, below what either path sustains: latency from publish
  to arrival, which in a flood would only measure the backlog.

Then the **flooder** scenario (``--flooder-budget``; :mod:`.gateway_flooder`): a gateway that
limits every device to that many results/s runs the paced run twice, alone and while one more
device floods; the neighbours' p99 with the flood over without it is ``flooder_p99_ratio``.

Reported: the rates and their ratios, how many results each cloud message carried (the
batching reduction), p50/p99 latency and what the gateway adds, the flooder's effect on its
neighbours, and whether every result arrived exactly once.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgecascade.benchmarks.cascade_tap import counted_gateway_env
from edgecascade.benchmarks.gateway_report import gateway_report

SITE = "bench"
PUBLISH_WINDOW = 10_000  # outstanding QoS 1 messages, well under paho's 65,535 ids


class _Subscriber:
    """Counts result ids as they arrive (batches unpacked) and when each first arrived."""

    def __init__(self, port: int, topic_filter: str, client_id: str, expected: int = 0) -> None:
        """A persistent session (kept for an hour): a subscriber that leaves and comes back
        under the same ``client_id`` gets what was published meanwhile."""
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.messages = 0
        self.done = threading.Event()
        self.expected = expected
        self.connected_at = 0.0  # when the broker accepted this session
        self.online_at = 0.0  # when a gateway's "online" state last arrived
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def reset(self, expected: int) -> None:
        with self._lock:
            self.arrived, self.duplicates, self.messages = {}, 0, 0
            self.expected = expected
            self.done.clear()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        # As little work as a subscriber can do to know which results arrived: the ids, by
        # plain JSON, the same way on both paths (validation is the gateway's work, not this).
        now = time.perf_counter()
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind == "results":
            ids = [entry["result"]["msg_id"] for entry in json.loads(msg.payload)["results"]]
        elif kind == "result":
            ids = [json.loads(msg.payload)["msg_id"]]
        elif kind == "state":
            if json.loads(msg.payload).get("status") == "online":
                self.online_at = now
            return
        else:
            return  # the gateway's telemetry
        with self._lock:
            self.messages += 1
            for msg_id in ids:
                if msg_id in self.arrived:
                    self.duplicates += 1
                else:
                    self.arrived[msg_id] = now
            if self.expected and len(self.arrived) >= self.expected:
                self.done.set()

    def _on_connect(self, client: paho.Client, *args: object) -> None:
        self.connected_at = time.perf_counter()

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes paho's loop, which then ends at once
        self.client.loop_stop()


def _messages(count: int, devices: int) -> list[tuple[str, str, bytes]]:
    """(msg_id, topic, payload) of ``count`` realistic result messages from ``devices`` devices."""
    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.shared.codec import encode
    from edgecascade.shared.topics import Kind, topic

    out = []
    for i in range(count):
        message = sample_result(i)
        wire = topic(SITE, f"cam{i % devices + 1}", Kind.RESULT)
        out.append((message.msg_id, wire, encode(message)))
    return out


def _publish(
    port: int, messages: list[tuple[str, str, bytes]], rate: float | None
) -> dict[str, float]:
    """Publish at QoS 1, as fast as acknowledged or at ``rate`` per second; returns send times.

    At most :data:`PUBLISH_WINDOW` messages are outstanding: paho numbers queued messages with
    16-bit ids, and past 65,535 unacknowledged ones an id repeats and a message is never sent.
    """
    window = threading.Semaphore(PUBLISH_WINDOW)
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = lambda *args: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent: dict[str, float] = {}
    infos = []
    start = time.perf_counter()
    for n, (msg_id, wire, payload) in enumerate(messages):
        if rate:
            pause = start + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        if not window.acquire(timeout=60):
            raise RuntimeError("the broker acknowledged nothing for 60 s")
        sent[msg_id] = time.perf_counter()
        infos.append(client.publish(wire, payload, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.disconnect()  # first: it wakes paho's loop, which then ends at once
    client.loop_stop()
    return sent


def _run(
    pub_port: int,
    sub: _Subscriber,
    messages: list[tuple[str, str, bytes]],
    timeout: float,
    rate: float | None = None,
) -> dict[str, Any]:
    import numpy as np

    sub.reset(len(messages))
    sent = _publish(pub_port, messages, rate)
    sub.done.wait(timeout)
    time.sleep(0.5)  # duplicates, if any, arrive after the last new id
    arrived = dict(sub.arrived)
    latencies = np.array([(arrived[i] - t) * 1000 for i, t in sent.items() if i in arrived])
    first, last = min(sent.values()), max(arrived.values(), default=min(sent.values()))
    return {
        "results": len(messages),
        "arrived": len(arrived),
        "lost": len(messages) - len(arrived),
        "duplicates": sub.duplicates,
        "cloud_messages": sub.messages,
        "results_per_message": len(arrived) / sub.messages if sub.messages else 0.0,
        "results_per_s": len(arrived) / (last - first) if last > first else 0.0,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if len(latencies) else None,
    }


def _drained(
    sub: _Subscriber, count: int, timeout: float, since: Callable[[], float]
) -> dict[str, Any]:
    """What a consumer that came back to a backlog of ``count`` received, from ``since()`` (its
    return) to the last arrival."""
    sub.done.wait(timeout)
    time.sleep(0.5)  # duplicates, if any, arrive after the last new id
    times = sorted(sub.arrived.values())
    span = times[-1] - since() if times and since() else 0.0
    return {
        "results": count,
        "arrived": len(times),
        "lost": count - len(times),
        "duplicates": sub.duplicates,
        "cloud_messages": sub.messages,
        "results_per_message": len(times) / sub.messages if sub.messages else 0.0,
        "results_per_s": len(times) / span if span > 0 else 0.0,
    }


def _raw_path(port: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from edgecascade.shared.topics import Kind, topic_filter

    results = topic_filter(Kind.RESULT)
    sub = _Subscriber(port, results, "bench-raw")
    flood = _run(port, sub, _messages(args.results, args.devices), args.timeout)
    paced = _run(
        port, sub, _messages(args.paced_results, args.devices), args.timeout, args.paced_rate
    )
    sub.close()  # away: the broker keeps its session and queues for it
    backlog = _messages(args.results, args.devices)
    _publish(port, backlog, None)
    sub = _Subscriber(port, results, "bench-raw", expected=len(backlog))
    drain = _drained(sub, len(backlog), args.timeout, lambda: sub.connected_at)
    sub.close()
    return {"flood": flood, "paced": paced, "drain": drain}


def _gateway_path(
    site_port: int, cloud_port: int, work: Path, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    from edgecascade.processes import ProcessGroup

    group = ProcessGroup(work / "logs")
    argv = [
        "gateway",
        "--site",
        SITE,
        "--data-dir",
        str(work / "gateway"),
        "--site-mqtt-port",
        str(site_port),
        "--cloud-mqtt-port",
        str(cloud_port),
        "--batch-linger-ms",
        str(args.linger_ms),
    ]
    # Plain JSON batches, as the subscriber reads them and as the documented runs measured (the
    # default until batch.compress was turned on); no replay, since the drain restarts the
    # gateway and a replay would send the flood's last outbox_replay_s again as duplicates.
    env = counted_gateway_env(compress=False)
    sub = _Subscriber(cloud_port, "ec/v1/#", "bench-cloud")
    try:
        gateway = group.spawn_cli("gateway", *argv, env=env)
        # As a device does: publish once the gateway's retained state on the site broker says
        # online, which it sets after subscribing (on the cloud broker it is online earlier).
        wait_gateway_online(site_port, args.timeout)
        flood = _run(site_port, sub, _messages(args.results, args.devices), args.timeout)
        paced = _run(
            site_port,
            sub,
            _messages(args.paced_results, args.devices),
            args.timeout,
            args.paced_rate,
        )
        group.stop(gateway)  # away: the site broker queues for its persistent session
        backlog = _messages(args.results, args.devices)
        _publish(site_port, backlog, None)
        sub.reset(len(backlog))
        sub.online_at = 0.0
        # Online on the cloud broker before it takes any in.
        group.spawn_cli("gateway", *argv, env=env)
        drain = _drained(sub, len(backlog), args.timeout, lambda: sub.online_at)
    finally:
        sub.close()
        group.stop_all()
    return {"flood": flood, "paced": paced, "drain": drain}


def bench_gateway(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.brokers import MosquittoBroker
    from edgecascade.shared.errors import EdgeCascadeError

    per_device = args.paced_rate / args.devices
    if args.flooder_budget and per_device > args.flooder_budget:
        raise EdgeCascadeError(
            f"--paced-rate {args.paced_rate:g} over {args.devices} devices is {per_device:g} "
            f"results/s per device, above --flooder-budget {args.flooder_budget:g}: the "
            "neighbours would be limited too"
        )

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site, cloud = MosquittoBroker(work / "site"), MosquittoBroker(work / "cloud")
        site.start()
        cloud.start()
        try:
            _progress(
                f"raw: {args.results} results flooded, {args.paced_results} paced at "
                f"{args.paced_rate:g}/s and {args.results} drained, through one broker ..."
            )
            raw = _raw_path(site.port, args)
            _progress("gateway: the same through site broker -> gateway -> cloud broker ...")
            gw = _gateway_path(site.port, cloud.port, work, args)
            flooder = None
            if args.flooder_budget > 0:
                from edgecascade.benchmarks.gateway_flooder import flooder_path

                _progress(
                    f"flooder: {args.paced_results} paced results from {args.devices} devices, "
                    f"alone and while one more device floods at {args.flooder_times:g}x its budget "
                    f"({args.flooder_budget:g} results/s per device) ..."
                )
                flooder = flooder_path(site.port, cloud.port, work, args)
        finally:
            site.stop()
            cloud.stop()

    return gateway_report(args, raw, gw, flooder)


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def wait_gateway_online(port: int, timeout: float, site: str = SITE) -> None:
    """Until the gateway's retained state on the broker at ``port`` says online."""
    from edgecascade.shared.codec import decode
    from edgecascade.shared.messages import StateMessage
    from edgecascade.shared.topics import Kind, Topic, topic

    online = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        state = decode(Topic.parse(msg.topic), bytes(msg.payload)).message
        if isinstance(state, StateMessage) and state.status == "online":
            online.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic(site, "gateway", Kind.STATE), qos=1)
    client.loop_start()
    try:
        if not online.wait(timeout):
            raise RuntimeError(f"the gateway did not come online within {timeout:g} s")
    finally:
        client.disconnect()  # first: it wakes paho's loop, which then ends at once
        client.loop_stop()


def add_gateway_parser(benches: Any) -> None:
    parser = benches.add_parser(
        "gateway",
        help="results/s through the gateway vs a bare broker; batching, latency, loss",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results", type=int, default=20_000, help="results flooded per path (20000)"
    )
    parser.add_argument(
        "--paced-results", type=int, default=1_000, help="results in the paced run (1000)"
    )
    parser.add_argument(
        "--paced-rate", type=float, default=200.0, help="paced run, results/s (200)"
    )
    parser.add_argument("--devices", type=int, default=10, help="devices publishing (10)")
    parser.add_argument("--linger-ms", type=float, default=200.0, help="batch linger (200)")
    parser.add_argument(
        "--flooder-budget",
        type=float,
        default=50.0,
        metavar="RESULTS_PER_S",
        help="the flooder scenario: every device limited to this many results/s while one "
        "floods beside the paced devices; 0 skips it (50)",
    )
    parser.add_argument(
        "--flooder-times",
        type=float,
        default=50.0,
        metavar="X",
        help="the flooder publishes at X times its budget; 0: as fast as the broker takes (50)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per path, seconds (120)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
