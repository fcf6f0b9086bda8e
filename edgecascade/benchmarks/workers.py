"""Re-inference frames per second with 1 and 2 workers (part of ``edgecascade bench cloud``).

For each worker count: a private Mosquitto, a freshly migrated SQLite database, N
``edgecascade cloud worker`` processes (one interpreter thread each) in one share group; then
``--frames`` real escalations (the evaluation sample's PNGs) are published as fast as the
broker takes them, and the clock runs from the first publish until every verdict has come back
on the verdict topics. Decoding, the cloud model, the verdict's transaction and its publication
all count. The ratio of the two rates says how the share group scales on this machine; it is
bounded by the cores: the broker, the publisher and the subscriber run here too.
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

    from shared.codec import encode
    from shared.ids import new_message_id
    from shared.messages import EscalationHeader, ModelRef, Prediction
    from shared.topics import Kind, topic

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
            frame_id=f"{path.parent.name}/{path.name}#{n}", captured_at=time.time(), model=model,
            top=[Prediction(index=0, label=path.parent.name, score=0.5)], reason="bench",
            content_type="image/png", width=width, height=height,
        )  # fmt: skip
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
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-verdicts",
                                  protocol=paho.MQTTv5)  # fmt: skip
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
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-escalations",
                         protocol=paho.MQTTv5)  # fmt: skip
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
    from cloud.db.migrate import upgrade
    from edgecascade.brokers import MosquittoBroker
    from edgecascade.processes import ProcessGroup

    data = work / f"cloud-{workers}"
    upgrade(f"sqlite:///{data / 'cloud.db'}")
    group = ProcessGroup(work / f"logs-{workers}")
    with MosquittoBroker(work / f"broker-{workers}") as broker:
        try:
            for n in range(workers):
                group.spawn_cli(
                    f"worker-{n}", "cloud", "worker", "--data-dir", str(data),
                    "--mqtt-port", str(broker.port), "--worker-id", f"bench-worker-{n}",
                    "--model", str(CLOUD_MODEL), "--threads", "1",
                )  # fmt: skip
            _wait_subscribed(group, workers, timeout)
            messages = _escalations(frames)
            verdicts = _Verdicts(broker.port, frames)
            start = _publish(broker.port, messages)
            verdicts.done.wait(timeout)
            verdicts.close()
        finally:
            group.stop_all()
    arrived = len(verdicts.ids & {msg_id for msg_id, _, _ in messages})
    elapsed = verdicts.last - start
    return {
        "inference_ms_p50": _median_inference_ms(f"sqlite:///{data / 'cloud.db'}"),
        "workers": workers,
        "frames": frames,
        "verdicts": arrived,
        "lost": frames - arrived,
        "seconds": elapsed,
        "frames_per_s": arrived / elapsed if elapsed > 0 else 0.0,
    }


def _median_inference_ms(url: str) -> float | None:
    """Decode, preprocess, invoke and postprocess per frame, as the workers stored it."""
    import numpy as np
    from sqlalchemy import create_engine, select

    from cloud.db.models import Verdict

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            values = conn.scalars(select(Verdict.inference_ms)).all()
    finally:
        engine.dispose()
    return float(np.median(values)) if values else None


def _wait_subscribed(group: Any, workers: int, timeout: float) -> None:
    """Until every worker's log says its MQTT session is up (it subscribes on connect)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        paths = [group.logdir / f"worker-{n}.log" for n in range(workers)]
        logs = [path.read_text(errors="replace") if path.exists() else "" for path in paths]
        if all("connected to" in log for log in logs):
            time.sleep(0.5)  # the SUBSCRIBE follows the CONNACK
            return
        for name, proc in group.children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{group.log_tail(name)}")
        time.sleep(0.1)
    raise RuntimeError(f"the workers did not connect within {timeout:g} s")


def measure_workers(frames: int, timeout: float) -> dict[str, Any]:
    """Frames/s with 1 and 2 workers and their ratio, on this machine."""
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            sys.stderr.write(f"re-inference: {frames} frames through {workers} worker(s) ...\n")
            runs[workers] = _run(workers, frames, timeout, Path(tmp))
    one, two = runs[1]["frames_per_s"], runs[2]["frames_per_s"]
    return {
        "cores": os.cpu_count(),
        "one_worker": runs[1],
        "two_workers": runs[2],
        "two_vs_one_workers_ratio": two / one if one else 0.0,
    }
