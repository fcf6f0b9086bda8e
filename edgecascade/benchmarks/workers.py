"""Re-inference frames per second with 1 and 2 workers (part of ``edgecascade bench cloud``).

For each worker count: a private Mosquitto, a freshly migrated SQLite database and N
``edgecascade cloud worker`` processes (one interpreter thread each) in one share group, over
``--frames`` real escalations (the evaluation sample's PNGs), measured two ways:

- **backlog** (the figure the ratio is taken from): the workers subscribe, stop, the escalations
  are published while they are away (the broker queues them in the workers' persistent sessions,
  split between the members of the group), the workers start again and drain the backlog. The
  rate is verdicts stored over the time from the first verdict stored to the last: decoding, the
  cloud model, the verdict's transaction and its publication count; the benchmark's own publisher
  and subscriber do not run meanwhile, so the two workers get the cores the broker leaves.
- **live**: workers running, the escalations published as fast as the broker takes them, the
  clock from the first publish until every verdict has come back on the verdict topics. The
  Python publisher and verdict subscriber share the 2 cores with the workers here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

SITE = "bench"
REPO = Path(__file__).resolve().parents[2]
CLOUD_MODEL = REPO / "models" / "fashion" / "fashion_cloud_int8.tflite"
EVAL_SAMPLE = REPO / "data" / "fashion-mnist-eval"


def _escalations(count: int) -> list[tuple[str, str, bytes]]:
    """(escalation id, topic, payload) of ``count`` real frames, cycling through the sample."""
    import cv2
    import numpy as np

    from edgecascade.shared.codec import encode
    from edgecascade.shared.ids import new_message_id
    from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction
    from edgecascade.shared.topics import Kind, topic

    frames = sorted(EVAL_SAMPLE.rglob("*.png"))
    if not frames:
        raise FileNotFoundError(f"no PNG frames under {EVAL_SAMPLE}")
    model = ModelRef(name="fashion-edge", version="1.0.0", sha256="0" * 64)
    out = []
    for n in range(count):
        path = frames[n % len(frames)]
        png = path.read_bytes()
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{path} is not an image")
        height, width = image.shape[:2]
        header = EscalationHeader(
            result_id=new_message_id(),
            frame_id=f"{path.parent.name}/{path.name}#{n}",
            captured_at=time.time(),
            model=model,
            top=[Prediction(index=0, label=path.parent.name, score=0.5)],
            reason="bench",
            content_type="image/png",
            width=width,
            height=height,
        )
        wire = topic(SITE, f"cam{n % 10 + 1}", Kind.ESCALATION)
        out.append((header.msg_id, wire, encode(header, png)))
    return out


class _Verdicts:
    """Escalation ids of the verdicts that came back, and when the last one did."""

    def __init__(self, port: int, expected: int) -> None:
        self.ids: set[str] = set()
        self.last = 0.0
        self.expected = expected
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-verdicts", protocol=paho.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("ec/v1/+/+/verdict", qos=1)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        import json

        escalation = json.loads(msg.payload)["escalation_id"]
        with self._lock:
            self.ids.add(escalation)
            self.last = time.perf_counter()
            if len(self.ids) >= self.expected:
                self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish(port: int, messages: list[tuple[str, str, bytes]]) -> float:
    """Publish at QoS 1; the time of the first publish."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-escalations", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish(wire, payload, qos=1) for _, wire, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
    client.loop_stop()
    client.disconnect()
    return start


def _run(workers: int, frames: int, timeout: float, work: Path) -> dict[str, Any]:
    messages = _escalations(frames)
    out: dict[str, Any] = {"workers": workers, "frames": frames}
    for mode in ("backlog", "live"):
        out[mode] = _run_mode(mode, workers, messages, timeout, work / f"{mode}-{workers}")
    return out


def _run_mode(
    mode: str, workers: int, messages: list[tuple[str, str, bytes]], timeout: float, work: Path
) -> dict[str, Any]:
    from edgecascade.brokers import MosquittoBroker
    from edgecascade.cloud.db.migrate import upgrade
    from edgecascade.processes import ProcessGroup

    frames = len(messages)
    url = f"sqlite:///{work / 'cloud' / 'cloud.db'}"
    upgrade(url)
    group = ProcessGroup(work / "logs")
    with MosquittoBroker(work / "broker") as broker:
        try:
            _spawn_workers(group, work / "cloud", broker.port, workers, 0, timeout)
            if mode == "backlog":
                group.stop_all()  # the sessions and their shared subscriptions stay
                _publish(broker.port, messages)
                _spawn_workers(group, work / "cloud", broker.port, workers, 1, timeout)
                run = _wait_stored(url, frames, timeout)
            else:
                verdicts = _Verdicts(broker.port, frames)
                start = _publish(broker.port, messages)
                verdicts.done.wait(timeout)
                verdicts.close()
                arrived = len(verdicts.ids & {msg_id for msg_id, _, _ in messages})
                run = {"verdicts": arrived, "seconds": verdicts.last - start}
        finally:
            group.stop_all()
    run["lost"] = frames - run["verdicts"]
    run["frames_per_s"] = run["verdicts"] / run["seconds"] if run["seconds"] > 0 else 0.0
    run["inference_ms_p50"] = _median_inference_ms(url)
    return run


def _spawn_workers(
    group: Any, data: Path, port: int, workers: int, round_: int, timeout: float
) -> None:
    names = [f"worker-{n}-{round_}" for n in range(workers)]
    for n, name in enumerate(names):
        group.spawn_cli(
            name,
            "cloud",
            "worker",
            "--data-dir",
            str(data),
            "--mqtt-port",
            str(port),
            "--worker-id",
            f"bench-worker-{n}",
            "--model",
            str(CLOUD_MODEL),
            "--threads",
            "1",
        )
    group.wait_logged(names, "connected to", timeout)
    time.sleep(0.5)  # the SUBSCRIBE follows the CONNACK


def _wait_stored(url: str, frames: int, timeout: float) -> dict[str, Any]:
    """Poll the verdicts table until ``frames`` distinct verdicts are stored; their count and the
    time from the first stored to the last."""
    from sqlalchemy import create_engine, func, select

    from edgecascade.cloud.db.models import Verdict

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                count, first, last = conn.execute(
                    select(func.count(), func.min(Verdict.created_at), func.max(Verdict.created_at))
                ).one()
            if count >= frames or time.monotonic() > deadline:
                return {"verdicts": int(count), "seconds": float((last or 0.0) - (first or 0.0))}
            time.sleep(0.2)
    finally:
        engine.dispose()


def _median_inference_ms(url: str) -> float | None:
    """Decode, preprocess, invoke and postprocess per frame, as the workers stored it."""
    import numpy as np
    from sqlalchemy import create_engine, select

    from edgecascade.cloud.db.models import Verdict

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            values = conn.scalars(select(Verdict.inference_ms)).all()
    finally:
        engine.dispose()
    return float(np.median(values)) if values else None


def measure_workers(frames: int, timeout: float) -> dict[str, Any]:
    """Frames/s with 1 and 2 workers, draining a backlog and live, and their ratios."""
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            sys.stderr.write(f"re-inference: {frames} frames through {workers} worker(s) ...\n")
            runs[workers] = _run(workers, frames, timeout, Path(tmp))

    def ratio(mode: str) -> float:
        one, two = runs[1][mode]["frames_per_s"], runs[2][mode]["frames_per_s"]
        return float(two / one) if one else 0.0

    return {
        "cores": os.cpu_count(),
        "one_worker": runs[1],
        "two_workers": runs[2],
        "two_vs_one_workers_ratio": ratio("backlog"),
        "live_two_vs_one_workers_ratio": ratio("live"),
    }
