"""Telemetry on the wire carries what an operator needs, and gating is counted in it."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.agent import Agent
from edgecascade.edge_agent.monitor import read_samples
from edgecascade.edge_agent.settings import GatingSettings, SourceSettings
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import TelemetryMessage
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.topics import Kind, Topic, topic_filter
from tests.utils.agents import agent_settings
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE


def test_telemetry_fields_and_gated_frames(broker: MosquittoBroker, tmp_path: Path) -> None:
    still = cv2.imread(str(sorted(EVAL_SAMPLE.rglob("*.png"))[0]))
    assert still is not None
    writer = cv2.VideoWriter(
        str(tmp_path / "still.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (28, 28)
    )
    for _ in range(40):  # a camera looking at a scene where nothing happens
        writer.write(still)
    writer.release()
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(kind="video", path=tmp_path / "still.avi", fps=100),
        telemetry_interval_s=0.2,
        gating=GatingSettings(enabled=True, threshold=2.0),
    )
    with Collector(broker.settings, topic_filter(Kind.TELEMETRY)) as collector:
        stats = Agent(settings).run(threading.Event())

        def telemetry() -> list[TelemetryMessage]:
            out = []
            for m in collector.messages:
                message = decode(Topic.parse(m.topic), m.payload).message
                if isinstance(message, TelemetryMessage):
                    out.append(message)
            return out

        assert wait_until(lambda: any(t.frames == 40 for t in telemetry()))
    assert stats.frames == 40 and stats.gated == 39  # one inference, 39 frames skipped
    last = next(t for t in telemetry() if t.frames == 40)
    assert last.counters["gated"] == 39
    assert {"capture", "preprocess", "invoke", "postprocess", "publish"} <= set(last.latency_ms)
    assert last.latency_ms["invoke"].p95 >= last.latency_ms["invoke"].p50 > 0
    assert last.model is not None and last.model.sha256 == load_card_for(EDGE_MODEL).sha256
    assert last.memory_rss_mb > 0 and 0 <= last.memory_percent <= 100
    assert last.counters["queued.result"] == 1
    # What the cloud's outbox alert compares: the outbox's bytes against its quota.
    assert last.queues["outbox_quota_bytes"] == int(settings.outbox_quota_mb * 1024 * 1024)
    assert 0 <= last.queues["outbox_bytes"] <= last.queues["outbox_quota_bytes"]
    # The monitoring fields (issue 20): disk, uptimes, inference count, mean model latency.
    assert last.disk_percent is not None and 0 < last.disk_percent <= 100
    assert last.uptime_s is not None and last.uptime_s > (last.agent_uptime_s or 0) > 0
    assert last.inferences == 1 and last.latency_mean_ms is not None and last.latency_mean_ms > 0
    logged = list(read_samples(settings.data_dir))  # each telemetry message, also on disk
    assert len(logged) == len(telemetry()) and logged[-1]["inference_count"] == 1
