"""A gateway between two real brokers (site and cloud), and helpers to read what it forwarded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.gateway.forwarder import Gateway
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import ResultBatchMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic
from tests.utils.factories import make_result
from tests.utils.mqtt import Collector, publish_all, wait_until

SITE = "site1"

StartGateway = Callable[..., "RunningGateway"]


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
) -> Iterator[StartGateway]:
    """``start_gateway(**settings)`` runs a gateway of ``site1``; stopped after the test."""
    site, cloud = brokers
    running: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        fields: dict[str, Any] = {
            "site": SITE,
            "data_dir": tmp_path / "gw",
            "site_mqtt": site.settings,
            "cloud_mqtt": cloud.settings,
            "batch": {"linger_ms": 50},
        }
        fields.update(overrides)
        gw = RunningGateway(GatewaySettings.model_validate(fields))
        assert wait_until(lambda: gw.gateway.site_link.connected)
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
    """Message ids that reached the cloud broker, in order; results also out of their batches."""
    ids: list[str] = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if kind is Kind.RESULT and parsed.kind is Kind.RESULT_BATCH:
            batch = decode(parsed, message.payload).message
            assert isinstance(batch, ResultBatchMessage)
            ids.extend(entry.result.msg_id for entry in batch.results)
        elif parsed.kind is kind:
            ids.append(decode(parsed, message.payload).message.msg_id)
    return ids


def forwarded_before_sentinel(site: MosquittoBroker, collector: Collector) -> list[str]:
    """Send one more result and wait until it is forwarded; returns the ids forwarded before it.

    The gateway forwards results in the order they arrive, so a message that was going to be
    forwarded earlier (a duplicate, say) has reached the cloud broker by then: a negative check
    needs no waiting period.
    """
    ((sentinel, message),) = results(1, device="sentinel")
    publish_all(site.settings, [message], client_id="pub-sentinel")
    assert wait_until(lambda: sentinel in forwarded_ids(collector), timeout=15), "no sentinel"
    ids = forwarded_ids(collector)
    ids.remove(sentinel)
    return ids
