"""Re-inference workers on a real broker and a real database (SQLite and PostgreSQL).

Real escalations: frames of the evaluation sample with the edge model's own answer in the header.
Two workers in one share group split them, each verdict is stored once and sent back to its
device, a replayed escalation changes nothing, and a frame that is not an image is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.db.models import Escalation, Verdict
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings, ResubmitSection
from edgecascade.cloud.worker import ReinferenceWorker
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction, VerdictMessage
from edgecascade.shared.mqtt import MqttLink, Outgoing
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.factories import make_result
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EVAL_SAMPLE

DEVICES = ("cam1", "cam2", "cam3")


def escalations(count: int) -> list[tuple[Outgoing, EscalationHeader, str]]:
    """(wire message, header, the cloud model's top-1) for ``count`` real frames."""
    edge, cloud = ModelRuntime.load(EDGE_MODEL), ModelRuntime.load(CLOUD_MODEL)
    model = ModelRef(name=edge.card.name, version=edge.card.version, sha256=edge.sha256)
    frames = sorted(EVAL_SAMPLE.rglob("*.png"))[:count]
    out = []
    for n, path in enumerate(frames):
        png = path.read_bytes()
        image = np.asarray(
            cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), np.uint8
        )
        top = [
            Prediction(index=i, label=label, score=score)
            for i, label, score in edge.classify(image).top(3)
        ]
        device = DEVICES[n % len(DEVICES)]
        result = make_result("site1", device, top=top)
        header = EscalationHeader(
            result_id=result.msg_id,
            frame_id=result.frame_id,
            captured_at=result.captured_at,
            model=model,
            top=top,
            reason="low_confidence",
            content_type="image/png",
            width=image.shape[1],
            height=image.shape[0],
            audit=n % 4 == 2,  # a random audit sample of a sure frame, judged like the others
        )
        wire = Outgoing(topic("site1", device, Kind.ESCALATION), encode(header, png))
        out.append((wire, header, cloud.classify(image).top(1)[0][1]))
    return out


def start_worker(
    services: Services, broker: MosquittoBroker, **options: object
) -> ReinferenceWorker:
    """A connected worker with the cloud model and ``options`` (worker_id, prefetch...)."""
    section = services.settings.worker.model_copy(update={"model": CLOUD_MODEL, **options})
    worker = ReinferenceWorker(
        services.engine, ModelRuntime.load(CLOUD_MODEL), mqtt=broker.settings, options=section
    )
    worker.start()
    assert worker.wait_connected(10)
    return worker


@pytest.fixture
def workers(services: Services, broker: MosquittoBroker) -> Iterator[list[ReinferenceWorker]]:
    started = [
        start_worker(services, broker, worker_id=name, prefetch=4)
        for name in ("worker-a", "worker-b")
    ]
    yield started
    for worker in started:
        worker.stop()


def verdicts(collector: Collector) -> list[tuple[str, VerdictMessage]]:
    out = []
    for m in collector.messages:
        parsed = Topic.parse(m.topic)
        message = decode(parsed, m.payload).message
        assert isinstance(message, VerdictMessage)
        out.append((parsed.device, message))
    return out


def stored(services: Services) -> list[Verdict]:
    with services.sessions() as session:
        return list(session.scalars(select(Verdict)))


def test_two_workers_split_the_frames_and_store_each_verdict_once(
    services: Services, broker: MosquittoBroker, workers: list[ReinferenceWorker], tmp_path: Path
) -> None:
    sent = escalations(60)
    with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="devices") as devices:
        publish_all(broker.settings, [wire for wire, _, _ in sent])
        assert wait_until(lambda: len(verdicts(devices)) == len(sent), timeout=60)
        # The split: both worked, neither handled a frame the other did.
        assert wait_until(lambda: sum(w.counts["handled"] for w in workers) == len(sent))
        handled = [worker.counts["handled"] for worker in workers]
        assert min(handled) > 0, handled
        rows = stored(services)
        assert len(rows) == len(sent)
        assert {row.worker_id for row in rows} == {"worker-a", "worker-b"}
        # Each verdict went to the device that escalated the frame and carries the cloud model's
        # answer on that frame; agreement is the edge's top-1 against it.
        by_escalation = {v.escalation_id: (device, v) for device, v in verdicts(devices)}
        for wire, header, cloud_label in sent:
            device, verdict = by_escalation[header.msg_id]
            assert device == Topic.parse(wire.topic).device
            assert verdict.result_id == header.result_id
            assert verdict.top[0].label == cloud_label
            assert verdict.agrees == (cloud_label == header.top[0].label)
        assert 0 < sum(row.agrees for row in rows) < len(rows)  # the edge model is not perfect
        # Each verdict keeps the escalation's audit flag and the cloud model's whole output
        # distribution (the soft targets), in the order of its labels.
        labels = ModelRuntime.load(CLOUD_MODEL).labels
        audits = {header.msg_id for _, header, _ in sent if header.audit}
        assert {row.escalation_id for row in rows if row.audit} == audits != set()
        for row in rows:
            probs = row.probs
            assert probs is not None and len(probs) == len(labels)
            assert abs(sum(probs) - 1) < 1e-4
            assert all(p == round(p, 6) for p in probs)
            assert max(range(len(labels)), key=lambda i: probs[i]) == row.label_index
            assert abs(probs[row.label_index] - row.score) < 1e-6

        # A replay (a gateway sending again after a lost PUBACK): nothing new stored; the
        # verdicts sent again are the stored ones, same message ids.
        first_ids = {v.msg_id for _, v in verdicts(devices)}
        publish_all(broker.settings, [wire for wire, _, _ in sent[:10]], client_id="replay")
        assert wait_until(lambda: len(verdicts(devices)) == len(sent) + 10, timeout=30)
        assert {v.msg_id for _, v in verdicts(devices)} == first_ids
    assert sum(worker.counts["verdicts.again"] for worker in workers) == 10
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Verdict)) == len(sent)


def test_a_burst_beyond_the_queue_is_judged_whole(
    services: Services, broker: MosquittoBroker
) -> None:
    """Mosquitto 2.0.11 sends past the receive maximum once a client acknowledges, so a burst
    fills the worker's queue (16 x prefetch: 64 here) and its network thread waits for room. The
    verdicts' PUBACKs come on their own connection, so the worker never waits on that thread
    (on one connection it stalled for good: 84 of these 300 verdicts, then nothing)."""
    worker = start_worker(services, broker, worker_id="worker-burst", prefetch=4)
    try:
        sent = escalations(300)
        with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="devices") as devices:
            burst = MqttLink(broker.settings, "burst", persistent=False, max_inflight=1000)
            burst.connect()
            try:  # all at once, not one PUBACK at a time
                infos = [burst.publish(wire) for wire, _, _ in sent]
                assert all(burst.confirm(info, 30) for info in infos)
            finally:
                burst.stop()
            assert wait_until(lambda: len(verdicts(devices)) == len(sent), timeout=60), (
                f"{len(verdicts(devices))} of {len(sent)} verdicts: {dict(worker.counts)}"
            )
        # a device can hold its verdict before the worker has read the PUBACK that counts it
        assert wait_until(lambda: worker.counts["handled"] == len(sent), timeout=30)
        assert len(stored(services)) == len(sent)
    finally:
        worker.stop()


def test_a_frame_that_is_not_an_image_is_refused_and_the_stream_goes_on(
    services: Services, broker: MosquittoBroker, workers: list[ReinferenceWorker]
) -> None:
    (good, header, _), (bad_wire, bad_header, _) = escalations(2)
    # The right magic bytes, then garbage: passes the codec's check, fails to decode.
    broken = b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50
    bad = Outgoing(bad_wire.topic, encode(bad_header, broken))
    with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="devices") as devices:
        publish_all(broker.settings, [bad, good])
        assert wait_until(lambda: len(verdicts(devices)) == 1, timeout=30)
        assert verdicts(devices)[0][1].escalation_id == header.msg_id
    assert wait_until(lambda: sum(worker.counts["rejected"] for worker in workers) == 1)
    assert [row.escalation_id for row in stored(services)] == [header.msg_id]


def test_escalations_no_worker_saw_are_sent_again_and_judged_once(
    cloud_settings: CloudSettings, broker: MosquittoBroker
) -> None:
    """Escalations that arrive before any worker ever subscribed are stored by the ingest but
    reach no worker (the share group does not exist yet). The cloud sends them again once they
    have waited ``resubmit.after_s`` without a verdict; each gets exactly one verdict, and the
    resubmitted copies add no escalation rows."""
    settings = cloud_settings.model_copy(
        update={
            "mqtt": broker.settings,
            "resubmit": ResubmitSection(after_s=1.0, interval_s=0.3),
        }
    )
    services = open_services(settings)
    worker: ReinferenceWorker | None = None
    sent = escalations(3)
    try:
        assert services.ingestor is not None and services.ingestor.wait_connected(10)
        publish_all(broker.settings, [wire for wire, _, _ in sent])

        def stored(table: type[Escalation] | type[Verdict]) -> int:
            with services.sessions() as session:
                return int(session.scalar(select(func.count()).select_from(table)) or 0)

        assert wait_until(lambda: stored(Escalation) == 3, timeout=15)
        worker = start_worker(services, broker, worker_id="late")
        with Collector(broker.settings, topic_filter(Kind.VERDICT)) as collector:
            assert wait_until(lambda: stored(Verdict) == 3, timeout=30), stored(Verdict)
            assert wait_until(lambda: len(collector.messages) >= 3, timeout=10)
        with services.sessions() as session:
            judged = dict(session.execute(select(Verdict.escalation_id, Verdict.label)).all())
            # The ingest stored the audit flag, the resubmitted copy carried it to the verdict.
            flags = {
                table.__tablename__: dict(session.execute(select(key, table.audit)).all())
                for table, key in (
                    (Escalation, Escalation.msg_id),
                    (Verdict, Verdict.escalation_id),
                )
            }
        assert services.resubmitter is not None
        resubmitter = services.resubmitter
        # Counted once the broker confirmed the publishes, which may be after the verdicts.
        resubmitted = wait_until(lambda: resubmitter.counts["resubmitted"] >= 3, timeout=10)
        rows = stored(Escalation)
    finally:
        if worker is not None:
            worker.stop()
        services.close()
    assert judged == {header.msg_id: cloud_label for _, header, cloud_label in sent}
    assert rows == 3  # the copies were recognised by the ingest
    audit = {header.msg_id: header.audit for _, header, _ in sent}
    assert flags == {"escalations": audit, "verdicts": audit} and sum(audit.values()) == 1
    assert resubmitted, resubmitter.counts
