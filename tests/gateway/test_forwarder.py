"""The gateway between two real brokers: forwarding, validation, outage, restart, duplicates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecascade.brokers import MosquittoBroker
from gateway.forwarder import Gateway
from gateway.settings import GatewaySettings
from shared.codec import decode, encode
from shared.mqtt import Outgoing
from shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.factories import make_escalation, make_result, make_state
from tests.utils.mqtt import Collector, publish_all, wait_until

SITE = "site1"


class RunningGateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.gateway = Gateway(settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.gateway.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, MosquittoBroker]]:
    site = MosquittoBroker(tmp_path / "site")
    cloud = MosquittoBroker(tmp_path / "cloud")
    site.start()
    cloud.start()
    yield site, cloud
    site.stop()
    cloud.stop()


@pytest.fixture
def start_gateway(
    brokers: tuple[MosquittoBroker, MosquittoBroker], tmp_path: Path
) -> Iterator[Callable[[], RunningGateway]]:
    site, cloud = brokers
    settings = GatewaySettings(
        site=SITE, data_dir=tmp_path / "gw", site_mqtt=site.settings, cloud_mqtt=cloud.settings
    )
    running: list[RunningGateway] = []

    def start() -> RunningGateway:
        gw = RunningGateway(settings)
        assert wait_until(
            lambda: gw.gateway._site_link is not None and gw.gateway._site_link.connected
        )
        running.append(gw)
        return gw

    yield start
    for gw in running:
        if gw.thread.is_alive():
            gw.close()


def results(n: int, device: str = "cam1") -> list[tuple[str, Outgoing]]:
    out = []
    for _ in range(n):
        message = make_result(SITE, device)
        out.append((message.msg_id, Outgoing(topic(SITE, device, Kind.RESULT), encode(message))))
    return out


def forwarded_ids(collector: Collector, kind: Kind = Kind.RESULT) -> list[str]:
    ids = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is kind:
            ids.append(decode(parsed, message.payload).message.msg_id)
    return ids


def test_forwards_valid_messages_and_rejects_invalid(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: Callable[[], RunningGateway]
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    sent = results(20)
    header, jpeg = make_escalation()
    state = make_state()
    with Collector(cloud.settings, "ec/v1/#") as collector:
        publish_all(
            site.settings,
            [m for _, m in sent]
            + [
                Outgoing(topic(SITE, "cam1", Kind.ESCALATION), encode(header, jpeg)),
                Outgoing(topic(SITE, "cam1", Kind.STATE), encode(state), retain=True),
                Outgoing(topic(SITE, "cam1", Kind.RESULT), b"{not json"),
                Outgoing(topic(SITE, "cam1", Kind.RESULT), b"x" * 100_000),
                Outgoing(topic(SITE, "cam1", Kind.ESCALATION), encode(header, b"not a jpeg")),
                Outgoing(topic("other-site", "cam1", Kind.RESULT), encode(make_result())),
            ],
        )
        assert wait_until(lambda: len(forwarded_ids(collector)) == 20)
        assert wait_until(lambda: forwarded_ids(collector, Kind.ESCALATION) == [header.msg_id])
        forwarded_escalation = next(
            m for m in collector.messages if Topic.parse(m.topic).kind is Kind.ESCALATION
        )
        assert (
            decode(Topic.parse(forwarded_escalation.topic), forwarded_escalation.payload).body
            == jpeg
        )
    assert forwarded_ids(collector) == [msg_id for msg_id, _ in sent]  # in order
    assert gw.gateway.rejected.total() == 3  # the other site is not subscribed at all
    assert gw.gateway.accepted["result"] == 20
    # State is forwarded retained: a late subscriber on the cloud side still sees it.
    with Collector(cloud.settings, topic_filter(Kind.STATE, site=SITE), client_id="late") as late:
        assert wait_until(
            lambda: any(m.topic == topic(SITE, "cam1", Kind.STATE) for m in late.messages)
        )


def test_cloud_outage_and_gateway_restart_lose_nothing(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: Callable[[], RunningGateway]
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    with Collector(cloud.settings, topic_filter(Kind.RESULT), client_id="cloud-sub") as collector:
        first = results(10)
        publish_all(site.settings, [m for _, m in first])
        assert wait_until(lambda: len(forwarded_ids(collector)) == 10)

        cloud.kill()  # uplink gone
        during = results(30)
        publish_all(site.settings, [m for _, m in during[:15]])
        assert wait_until(lambda: gw.gateway.accepted["result"] == 25)
        gw.close()  # gateway restarted while the cloud is still down
        publish_all(site.settings, [m for _, m in during[15:]])  # queued by the site broker
        gw2 = start_gateway()
        cloud.start()
        assert wait_until(lambda: len(set(forwarded_ids(collector))) == 40, timeout=30)
        assert gw2.gateway.accepted["result"] == 15
    expected = {msg_id for msg_id, _ in first + during}
    assert set(forwarded_ids(collector)) == expected


def test_duplicate_deliveries_are_forwarded_once(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: Callable[[], RunningGateway]
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    cloud.kill()  # hold everything in the outbox so the duplicates meet there
    sent = results(5)
    publish_all(site.settings, [m for _, m in sent] + [m for _, m in sent])
    assert wait_until(lambda: gw.gateway.duplicates["result"] == 5)
    assert gw.gateway.accepted["result"] == 5
    cloud.start()
    with Collector(cloud.settings, topic_filter(Kind.RESULT), client_id="cloud-sub2") as collector:
        assert wait_until(lambda: len(forwarded_ids(collector)) >= 5)
        assert not wait_until(lambda: len(forwarded_ids(collector)) > 5, timeout=1.0)
