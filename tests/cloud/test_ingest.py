"""The ingest against a real Mosquitto and SQLite: exactly-once storage, rejects, broker restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.db.models import Base, Device, Escalation, Result
from edgecascade.cloud.ingest import Ingestor
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings, IngestSection
from edgecascade.cloud.store import BatchWriter, Inbound, ResultDicts, StoreWriter, WriteOutcome
from edgecascade.shared.codec import encode
from edgecascade.shared.mqtt import MqttLink, Outgoing
from edgecascade.shared.topics import Kind, topic
from tests.utils.factories import make_batch, make_escalation, make_result, make_state
from tests.utils.mqtt import wait_until

OPTIONS = IngestSection(batch_size=50, flush_interval_s=0.05)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    opened = open_services(CloudSettings(data_dir=tmp_path / "cloud"), start_ingest=False)
    yield opened
    opened.close()


@pytest.fixture
def publisher(broker: MosquittoBroker) -> Iterator[MqttLink]:
    link = MqttLink(broker.settings, "test-publisher", persistent=False)
    link.connect()
    yield link
    link.stop()


def send(link: MqttLink, site: str, device: str, kind: Kind, payload: bytes) -> None:
    """Publish with QoS 1 and wait for the broker's PUBACK."""
    info = link.publish(Outgoing(topic(site, device, kind), payload))
    assert link.confirm(info, timeout=10), f"no PUBACK for {kind.value}"


def send_message(
    link: MqttLink, site: str, device: str, kind: Kind, msg: BaseModel, body: bytes | None = None
) -> None:
    send(link, site, device, kind, encode(msg, body))


def rows(services: Services, entity: type[Base]) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(entity)) or 0


def device_status(services: Services, site: str, device: str) -> str | None:
    with services.sessions() as session:
        row = session.get(Device, (site, device))
        return row.status if row is not None else None


def start_ingestor(
    services: Services, broker: MosquittoBroker, writer: BatchWriter | None = None
) -> Ingestor:
    ingestor = Ingestor(
        writer or StoreWriter(services.engine, services.blobs),
        mqtt=broker.settings,
        options=OPTIONS,
        client_id="cloud-test",
    )
    ingestor.start()
    assert ingestor.wait_connected(10)
    return ingestor


def wait_subscribed(ingestor: Ingestor, publisher: MqttLink) -> None:
    """Publish probe states until one arrives: the (shared) subscription is then in place."""
    while ingestor.stats().received == 0:
        send_message(publisher, "probe", "probe", Kind.STATE, make_state())
        wait_until(lambda: ingestor.stats().received > 0, timeout=0.3)


def test_each_message_stored_once_bad_ones_rejected(
    services: Services, broker: MosquittoBroker, publisher: MqttLink
) -> None:
    ingestor = start_ingestor(services, broker)
    try:
        wait_subscribed(ingestor, publisher)
        payloads = [encode(make_result("s1", f"cam-{i % 3}")) for i in range(60)]
        for i, payload in enumerate(payloads):
            send(publisher, "s1", f"cam-{i % 3}", Kind.RESULT, payload)
        send(publisher, "s1", "cam-0", Kind.RESULT, payloads[0])  # a redelivery
        send(publisher, "s1", "cam-0", Kind.RESULT, b'{"not": "a result"}')
        send(publisher, "s1", "cam-0", Kind.RESULT, b" " * (17 * 1024))  # over the 16 KiB limit
        assert wait_until(lambda: ingestor.stats().duplicates == 1), "never saw the duplicate"
        stats = ingestor.stats()
        assert (stats.stored, stats.rejected) == (60, 2)
        assert stats.rejected_by_reason == {"invalid": 1, "too_large": 1}
        assert rows(services, Result) == 60

        # Still working after the rejects, for every kind it ingests.
        header, jpeg = make_escalation("s1", "cam-0")
        send_message(publisher, "s1", "cam-0", Kind.ESCALATION, header, jpeg)
        audit, _ = make_escalation("s1", "cam-0", reason="audit", audit=True)
        send_message(publisher, "s1", "cam-0", Kind.ESCALATION, audit, jpeg)
        batch = make_batch("s2", [("cam-7", make_result()), ("cam-8", make_result())])
        send_message(publisher, "s2", "gw", Kind.RESULT_BATCH, batch)
        send_message(publisher, "s2", "cam-7", Kind.STATE, make_state(status="offline"))
        assert wait_until(lambda: rows(services, Result) == 62), "never saw the gateway batch"
        assert wait_until(lambda: rows(services, Escalation) == 2), "never saw the escalations"
        assert wait_until(lambda: device_status(services, "s2", "cam-7") == "offline"), (
            "never saw the state"
        )
        assert services.blobs.get(f"s1/cam-0/{header.msg_id}.jpg") == jpeg
        with services.sessions() as session:  # the random audit sample is stored as one
            flags = dict(session.execute(select(Escalation.msg_id, Escalation.audit)).all())
        assert flags == {header.msg_id: False, audit.msg_id: True}
        assert ingestor.stats().rejected == 2
    finally:
        ingestor.stop()

    # Everything was acknowledged: the resumed session has nothing to deliver again.
    again = start_ingestor(services, broker)
    try:
        wait_subscribed(again, publisher)
        assert wait_until(lambda: again.stats().queued == 0), "never saw the probe to be written"
        # Redeliveries would have come before the probe and been counted as duplicates.
        stats = again.stats()
        assert (stats.stored, stats.duplicates, stats.rejected) == (0, 0, 0)
        assert rows(services, Result) == 62
    finally:
        again.stop()


class GatedWriter:
    """A store writer that holds every write while the gate is closed."""

    def __init__(self, inner: StoreWriter) -> None:
        self.inner = inner
        self.open = threading.Event()
        self.open.set()
        self.waiting = threading.Event()

    def write(self, items: Sequence[Inbound]) -> WriteOutcome:
        if not self.open.is_set():
            self.waiting.set()
            self.open.wait(30)
        return self.inner.write(items)


def test_broker_restart_mid_stream_stores_everything_once(
    services: Services, broker: MosquittoBroker, publisher: MqttLink
) -> None:
    gated = GatedWriter(StoreWriter(services.engine, services.blobs))
    ingestor = start_ingestor(services, broker, gated)
    try:
        wait_subscribed(ingestor, publisher)
        assert wait_until(lambda: ingestor.stats().queued == 0), "never saw the probe to be written"
        received_before = ingestor.stats().received

        gated.open.clear()  # received but not stored, so not acknowledged
        first = [make_result("s1", "cam-1") for _ in range(30)]
        for msg in first:
            send_message(publisher, "s1", "cam-1", Kind.RESULT, msg)
        assert wait_until(lambda: ingestor.stats().received == received_before + 30), (
            "never saw delivery"
        )
        assert gated.waiting.wait(10)

        broker.restart()  # clean restart: the broker keeps the session and its in-flight messages
        gated.open.set()
        assert wait_until(lambda: ingestor.connected and publisher.connected), (
            "never saw reconnects"
        )
        second = [make_result("s1", "cam-2") for _ in range(30)]
        for msg in second:
            send_message(publisher, "s1", "cam-2", Kind.RESULT, msg)

        # Reconnects back off under load: the bound is generous, the message says where it stood.
        assert wait_until(lambda: rows(services, Result) == 60, timeout=45), (
            f"never saw all 60 results: {rows(services, Result)} stored, {ingestor.stats()}"
        )
        # The unacknowledged first half was delivered again and stored as duplicates.

        assert wait_until(lambda: ingestor.stats().duplicates >= 30), "never saw redelivery"
        with services.sessions() as session:
            stored = set(session.scalars(select(Result.msg_id)))
        assert stored == {m.msg_id for m in first + second}
        assert ingestor.stats().rejected == 0
    finally:
        ingestor.stop()


class FlakyWriter:
    """Fails the first writes with a connection error and any batch holding a poison label."""

    def __init__(self, inner: StoreWriter, transient_failures: int) -> None:
        self.inner = inner
        self.transient_failures = transient_failures

    def write(self, items: Sequence[Inbound]) -> WriteOutcome:
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise OperationalError("INSERT ...", {}, ConnectionError("database went away"))
        for item in items:
            results = item.decoded.results if isinstance(item.decoded, ResultDicts) else []
            if any(result["top"][0]["label"] == "poison" for _device, result in results):
                raise DataError("INSERT ...", {}, ValueError("cannot store this label"))
        return self.inner.write(items)


def test_database_errors_retry_and_poison_is_isolated(
    services: Services, broker: MosquittoBroker, publisher: MqttLink
) -> None:
    flaky = FlakyWriter(StoreWriter(services.engine, services.blobs), transient_failures=0)
    ingestor = start_ingestor(services, broker, flaky)
    try:
        wait_subscribed(ingestor, publisher)
        assert wait_until(lambda: ingestor.stats().queued == 0), "never saw the probe to be written"
        flaky.transient_failures = 2  # the next two writes fail: retried, not acknowledged
        good = [make_result("s1", "cam-1") for _ in range(10)]
        poison = make_result("s1", "cam-1", label="poison")
        for msg in [*good[:5], poison, *good[5:]]:
            send_message(publisher, "s1", "cam-1", Kind.RESULT, msg)
        assert wait_until(lambda: ingestor.stats().rejected == 1), "never saw the poison message"
        assert wait_until(lambda: rows(services, Result) == 10), "never saw the good messages"
        assert flaky.transient_failures == 0
        assert ingestor.stats().rejected_by_reason == {"store": 1}
        with services.sessions() as session:
            assert set(session.scalars(select(Result.msg_id))) == {m.msg_id for m in good}
    finally:
        ingestor.stop()
    # The poison message was acknowledged too: nothing comes back on the resumed session.
    again = start_ingestor(services, broker)
    try:
        wait_subscribed(again, publisher)
        assert wait_until(lambda: again.stats().queued == 0), "never saw the probe to be written"
        assert (again.stats().duplicates, again.stats().rejected) == (0, 0)
        assert rows(services, Result) == 10
    finally:
        again.stop()
