"""``edgecascade bench gateway``: results per second through the site gateway vs the bare broker.

In one run, with the same publisher and the same kind of result messages (several devices, QoS 1):

- **raw**: a plain paho publisher -> one Mosquitto -> a plain paho subscriber;
- **gateway**: the same publisher -> site Mosquitto -> ``edgecascade gateway`` (its own process:
  validation, de-duplication, disk outbox, batching) -> cloud Mosquitto -> the same subscriber.

Each path runs twice: a **flood** (every result published as fast as the broker acknowledges)
gives results per second, end to end; a **paced** run (``--paced-rate`` results/s, below what
either path sustains) gives the latency from publish to arrival, which in a flood would only
measure the backlog. Reported: both rates and their ratio, how many results each cloud message
carried (the batching reduction), p50/p99 latency and what the gateway adds, and whether every
result arrived exactly once.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgecascade.benchmarks.table import format_table

SITE = "bench"


class _Subscriber:
    """Counts result ids as they arrive (batches unpacked) and when each first arrived."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.arrived: dict[str, float] = {}
        self.duplicates = 0
        self.messages = 0
        self.done = threading.Event()
        self.expected = 0
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{port}",
                                  protocol=paho.MQTTv5)  # fmt: skip
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def reset(self, expected: int) -> None:
        with self._lock:
            self.arrived, self.duplicates, self.messages = {}, 0, 0
            self.expected = expected
            self.done.clear()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        from shared.codec import decode
        from shared.messages import ResultBatchMessage, ResultMessage
        from shared.topics import Topic

        now = time.perf_counter()
        message = decode(Topic.parse(msg.topic), bytes(msg.payload)).message
        if isinstance(message, ResultBatchMessage):
            ids = [entry.result.msg_id for entry in message.results]
        elif isinstance(message, ResultMessage):
            ids = [message.msg_id]
        else:
            return  # the gateway's state and telemetry
        with self._lock:
            self.messages += 1
            for msg_id in ids:
                if msg_id in self.arrived:
                    self.duplicates += 1
                else:
                    self.arrived[msg_id] = now
            if self.expected and len(self.arrived) >= self.expected:
                self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _messages(count: int, devices: int) -> list[tuple[str, str, bytes]]:
    """(msg_id, topic, payload) of ``count`` realistic result messages from ``devices`` devices."""
    from shared.codec import encode
    from shared.messages import ModelRef, Prediction, ResultMessage
    from shared.topics import Kind, topic

    model = ModelRef(name="fashion-edge", version="1.0.0", sha256="0" * 64)
    out = []
    for i in range(count):
        device = f"cam{i % devices + 1}"
        message = ResultMessage(
            frame_id=f"frame-{i}",
            captured_at=time.time(),
            model=model,
            top=[Prediction(index=k, label=f"class{k}", score=0.9 - 0.3 * k) for k in range(3)],
            latency_ms={"preprocess": 0.2, "invoke": 1.5, "postprocess": 0.05},
        )
        out.append((message.msg_id, topic(SITE, device, Kind.RESULT), encode(message)))
    return out


def _publish(
    port: int, messages: list[tuple[str, str, bytes]], rate: float | None
) -> dict[str, float]:
    """Publish at QoS 1, as fast as acknowledged or at ``rate`` per second; returns send times."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}",
                         protocol=paho.MQTTv5)  # fmt: skip
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
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
        sent[msg_id] = time.perf_counter()
        infos.append(client.publish(wire, payload, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.loop_stop()
    client.disconnect()
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


def _both(
    pub_port: int, sub: _Subscriber, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flood and the paced run of one path, each with fresh message ids."""
    flood = _run(pub_port, sub, _messages(args.results, args.devices), args.timeout)
    paced = _run(
        pub_port, sub, _messages(args.paced_results, args.devices), args.timeout, args.paced_rate
    )
    return flood, paced


def bench_gateway(args: argparse.Namespace) -> dict[str, Any]:
    from edgecascade.brokers import MosquittoBroker
    from edgecascade.processes import ProcessGroup
    from shared.topics import Kind, topic_filter

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site, cloud = MosquittoBroker(work / "site"), MosquittoBroker(work / "cloud")
        site.start()
        cloud.start()
        group = ProcessGroup(work / "logs")
        try:
            _progress(
                f"raw: {args.results} results flooded, then {args.paced_results} at "
                f"{args.paced_rate:g}/s, through one broker ..."
            )
            raw_sub = _Subscriber(site.port, topic_filter(Kind.RESULT))
            raw_flood, raw_paced = _both(site.port, raw_sub, args)
            raw_sub.close()

            _progress("gateway: the same through site broker -> gateway -> cloud broker ...")
            group.spawn_cli(
                "gateway", "gateway", "--site", SITE, "--data-dir", str(work / "gateway"),
                "--site-mqtt-port", str(site.port), "--cloud-mqtt-port", str(cloud.port),
                "--batch-linger-ms", str(args.linger_ms),
            )  # fmt: skip
            sub = _Subscriber(cloud.port, "ec/v1/#")
            _wait_gateway_online(cloud.port, args.timeout)
            gw_flood, gw_paced = _both(site.port, sub, args)
            sub.close()
        finally:
            group.stop_all()
            site.stop()
            cloud.stop()

    ratio = (
        gw_flood["results_per_s"] / raw_flood["results_per_s"]
        if raw_flood["results_per_s"]
        else 0.0
    )
    added = {
        q: gw_paced[f"latency_ms_{q}"] - raw_paced[f"latency_ms_{q}"]
        if gw_paced[f"latency_ms_{q}"] is not None and raw_paced[f"latency_ms_{q}"] is not None
        else None
        for q in ("p50", "p99")
    }
    rows = [
        [name, flood["results_per_s"], flood["results_per_message"],
         paced["results_per_message"], paced["latency_ms_p50"], paced["latency_ms_p99"],
         flood["lost"] + paced["lost"], flood["duplicates"] + paced["duplicates"]]
        for name, flood, paced in (
            ("raw paho -> mosquitto -> paho", raw_flood, raw_paced),
            ("site -> gateway -> cloud", gw_flood, gw_paced),
        )
    ]  # fmt: skip
    table = format_table(
        ["path", "flood results/s", "per msg (flood)", "per msg (paced)", "p50 ms", "p99 ms",
         "lost", "duplicates"],
        rows,
    )  # fmt: skip
    table += (
        f"\ngateway vs raw throughput: {ratio:.3f}; latency added by the gateway at "
        f"{args.paced_rate:g} results/s: p50 {_ms(added['p50'])}, p99 {_ms(added['p99'])} "
        f"(batch linger {args.linger_ms:g} ms)"
    )
    return {
        "results": args.results,
        "paced_results": args.paced_results,
        "paced_rate": args.paced_rate,
        "devices": args.devices,
        "linger_ms": args.linger_ms,
        "raw": {"flood": raw_flood, "paced": raw_paced},
        "gateway": {"flood": gw_flood, "paced": gw_paced},
        "gateway_vs_raw_throughput_ratio": ratio,
        "results_per_cloud_message_flood": gw_flood["results_per_message"],
        "results_per_cloud_message_paced": gw_paced["results_per_message"],
        "added_latency_ms_p50": added["p50"],
        "added_latency_ms_p99": added["p99"],
        "lost": sum(r["lost"] for r in (raw_flood, raw_paced, gw_flood, gw_paced)),
        "duplicates": sum(r["duplicates"] for r in (raw_flood, raw_paced, gw_flood, gw_paced)),
        "table": table,
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _wait_gateway_online(port: int, timeout: float) -> None:
    """Until the gateway's retained state on the cloud broker says online."""
    from shared.codec import decode
    from shared.messages import StateMessage
    from shared.topics import Kind, Topic, topic

    online = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        state = decode(Topic.parse(msg.topic), bytes(msg.payload)).message
        if isinstance(state, StateMessage) and state.status == "online":
            online.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic(SITE, "gateway", Kind.STATE), qos=1)
    client.loop_start()
    try:
        if not online.wait(timeout):
            raise RuntimeError(f"the gateway did not come online within {timeout:g} s")
    finally:
        client.loop_stop()
        client.disconnect()


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
    parser.add_argument("--timeout", type=float, default=120.0, help="per path, seconds (120)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the figures as JSON")
