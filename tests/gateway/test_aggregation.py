"""Gateway aggregation and the downlink over two real brokers: de-duplication after forwarding,
telemetry rollups, resync, verdicts routed to devices through a site-broker outage."""

from __future__ import annotations

import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import (
    CommandMessage,
    Message,
    ReplyMessage,
    TelemetryRollupMessage,
    VerdictMessage,
)
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic
from tests.gateway.conftest import (
    SITE,
    StartGateway,
    forwarded_before_sentinel,
    forwarded_ids,
    results,
)
from tests.utils.factories import make_result, make_state, make_telemetry, predictions
from tests.utils.mqtt import Collector, publish_all, wait_until

Brokers = tuple[MosquittoBroker, MosquittoBroker]


def received(collector: Collector, kind: type[Message]) -> list[Message]:
    out = []
    for m in collector.messages:
        message = decode(Topic.parse(m.topic), m.payload).message
        if isinstance(message, kind):
            out.append(message)
    return out


def test_a_message_sent_again_after_forwarding_is_a_duplicate(
    brokers: Brokers, start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    sent = results(5)
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-dup") as collector:
        publish_all(site.settings, [m for _, m in sent])
        assert wait_until(lambda: len(forwarded_ids(collector)) == 5)
        # A device that missed its PUBACKs sends the same messages again, long after.
        publish_all(site.settings, [m for _, m in sent], client_id="pub-again")
        assert wait_until(lambda: gw.gateway.duplicates["result"] == 5)
        forwarded = forwarded_before_sentinel(site, collector)
    assert forwarded == [msg_id for msg_id, _ in sent]
    assert gw.gateway.accepted["result"] == 5 + 1  # and the sentinel


def test_telemetry_is_rolled_up_per_device_per_window(
    brokers: Brokers, start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    start_gateway(telemetry_window_s=1.0)
    samples = [
        (device, make_telemetry(cpu_percent=cpu, fps=fps))
        for device, cpu, fps in [("cam1", 10, 5), ("cam1", 20, 7), ("cam1", 60, 6), ("cam2", 5, 1)]
    ]
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-rollup") as collector:
        publish_all(
            site.settings,
            [Outgoing(topic(SITE, d, Kind.TELEMETRY), encode(m), qos=1) for d, m in samples],
        )
        assert wait_until(lambda: len(received(collector, TelemetryRollupMessage)) == 2)
        raw = [m for m in collector.messages if Topic.parse(m.topic).kind is Kind.TELEMETRY]
    assert raw == []  # one rollup per device and window instead of every sample
    by_device = {
        Topic.parse(m.topic).device: decode(Topic.parse(m.topic), m.payload).message
        for m in collector.messages
        if Topic.parse(m.topic).kind is Kind.TELEMETRY_ROLLUP
    }
    cam1 = by_device["cam1"]
    assert isinstance(cam1, TelemetryRollupMessage)
    assert cam1.samples == 3 and cam1.last.msg_id == samples[2][1].msg_id
    cpu = cam1.fields["cpu_percent"]
    assert (cpu.min, cpu.mean, cpu.max, cpu.last) == (10, 30, 60, 60)
    assert cam1.fields["fps"].max == 7
    assert cam1.window_end - cam1.window_start >= 1.0
    cam2 = by_device["cam2"]
    assert isinstance(cam2, TelemetryRollupMessage) and cam2.samples == 1


def test_resync_answers_with_the_whole_site_state(
    brokers: Brokers, start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    start_gateway()
    publish_all(
        site.settings,
        [
            Outgoing(topic(SITE, d, Kind.STATE), encode(make_state()), retain=True)
            for d in ("cam1", "cam2")
        ]
        + [Outgoing(topic(SITE, "cam1", Kind.TELEMETRY), encode(make_telemetry()), qos=1)],
    )
    command = CommandMessage(correlation=make_result().msg_id)  # any fresh message id
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-resync") as collector:
        assert wait_until(
            lambda: {Topic.parse(m.topic).device for m in collector.messages} >= {"cam1", "cam2"}
        )
        publish_all(
            cloud.settings,
            [Outgoing(topic(SITE, "gateway", Kind.CMD, "resync"), encode(command))],
            client_id="operator",
        )
        assert wait_until(lambda: len(received(collector, ReplyMessage)) == 1)
        reply = received(collector, ReplyMessage)[0]
        assert isinstance(reply, ReplyMessage)
        assert reply.status == "ok" and reply.correlation == command.correlation
        assert isinstance(reply.data, dict)
        devices = reply.data["devices"]
        assert isinstance(devices, dict) and set(devices) == {"cam1", "cam2"}
        cam1 = devices["cam1"]
        assert isinstance(cam1, dict) and isinstance(cam1["state"], dict)
        assert cam1["state"]["status"] == "online" and cam1["telemetry"] is not None

        # The states are published again too, retained, for subscribers that came late.
        def states() -> int:
            return sum(
                Topic.parse(m.topic).kind is Kind.STATE and Topic.parse(m.topic).device != "gateway"
                for m in collector.messages
            )

        assert wait_until(lambda: states() >= 4)  # forwarded once, published again on resync

    unknown = CommandMessage(correlation=make_result().msg_id)
    with Collector(cloud.settings, "ec/v1/+/+/reply/#", client_id="cloud-unknown") as collector:
        publish_all(
            cloud.settings,
            [Outgoing(topic(SITE, "gateway", Kind.CMD, "reboot"), encode(unknown))],
            client_id="operator2",
        )
        assert wait_until(lambda: len(received(collector, ReplyMessage)) == 1)
        reply = received(collector, ReplyMessage)[0]
        assert isinstance(reply, ReplyMessage)
        assert reply.status == "error" and reply.error is not None and "reboot" in reply.error


@pytest.mark.parametrize("outage", [False, True])
def test_verdicts_reach_the_device_through_a_site_broker_outage(
    brokers: Brokers, start_gateway: StartGateway, outage: bool
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    result = make_result()
    verdict = VerdictMessage(
        escalation_id=make_result().msg_id,
        result_id=result.msg_id,
        model=result.model,
        top=predictions("dog", 0.97),
        agrees=False,
    )
    device_topic = topic(SITE, "cam1", Kind.VERDICT)
    with Collector(site.settings, device_topic, client_id="cam1-verdicts") as device:
        if outage:  # the site broker goes away; it keeps the device's session on disk
            site.stop()
        publish_all(cloud.settings, [Outgoing(device_topic, encode(verdict))], client_id="worker")
        assert wait_until(lambda: gw.gateway.downlinked["verdict"] == 1)
        if outage:
            site.start()
        assert wait_until(lambda: len(received(device, VerdictMessage)) >= 1, timeout=30)
    got = received(device, VerdictMessage)[0]
    assert isinstance(got, VerdictMessage) and got.msg_id == verdict.msg_id


def test_compressed_batches_carry_every_result_in_fewer_bytes(
    brokers: Brokers, start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    start_gateway(batch={"linger_ms": 300, "compress": True})
    sent = results(40)
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-zlib") as collector:
        publish_all(site.settings, [m for _, m in sent])
        assert wait_until(lambda: len(forwarded_ids(collector)) == 40)
        batches = [m for m in collector.messages if Topic.parse(m.topic).kind is Kind.RESULT_BATCH]
    assert sorted(forwarded_ids(collector)) == sorted(msg_id for msg_id, _ in sent)
    assert batches and all(m.payload[:1] == b"\x78" for m in batches)  # zlib, not JSON
    json_bytes = sum(len(m.payload) for _, m in sent)
    assert sum(len(m.payload) for m in batches) < json_bytes / 3
