"""An agent whose disk fills up keeps classifying, counts what it could not keep, and delivers
again once space returns; against a real broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypeVar

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.settings import SourceSettings
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import Message, ResultMessage, TelemetryMessage
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.topics import Kind, Topic, topic_filter
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.diskfull import ROOMY, set_page_limit
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import sample_subset

M = TypeVar("M", bound=Message)


def test_an_agent_on_a_full_disk_keeps_running_counts_and_recovers(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    frames = sample_subset(tmp_path / "frames", per_class=15)
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=tmp_path / "frames", fps=20),
        telemetry_interval_s=0.2,
        # Delivered rows stay on disk for the replay window: the full disk stays full.
        outbox_replay_s=600,
    )
    filters = (topic_filter(Kind.RESULT), topic_filter(Kind.TELEMETRY))
    with Collector(broker.settings, *filters) as collector:

        def received(kind: type[M]) -> list[M]:
            out: list[M] = []
            for m in collector.messages:
                message = decode(Topic.parse(m.topic), m.payload).message
                if isinstance(message, kind):
                    out.append(message)
            return out

        running = RunningAgent(settings)
        agent, outbox = running.agent, running.agent.outbox
        try:
            assert wait_until(lambda: len(received(ResultMessage)) >= 10)
            set_page_limit(outbox, 1)  # the disk is full from here
            assert wait_until(lambda: outbox.counters().get("dropped.disk_full.result", 0) >= 10)
            frames_while_full = agent.stats.frames
            assert wait_until(lambda: agent.stats.frames >= frames_while_full + 10)
            set_page_limit(outbox, ROOMY)  # space returns
            released_at = time.time()
            dropped = outbox.counters()["dropped.disk_full.result"]
            assert agent.stats.frames < len(frames)  # frames are left to classify after
            running.thread.join(timeout=60)  # the source ends; the agent drains and stops
        finally:
            running.close()
        stats = agent.stats
        assert wait_until(
            lambda: any(
                t.counters.get("dropped.disk_full.result", 0) >= dropped
                for t in received(TelemetryMessage)
            )
        )
        results = received(ResultMessage)
    box = Outbox(tmp_path / "agent" / "outbox.db")
    not_kept = box.counters()["dropped.disk_full.result"]  # written once there was room
    box.close()
    assert not_kept >= dropped > 0
    assert stats.frames == stats.results == len(frames)  # the camera never stopped
    ids = [r.msg_id for r in results]
    assert len(ids) == len(set(ids)) == len(frames) - not_kept  # the rest all delivered, once
    assert any(r.captured_at > released_at for r in results)
