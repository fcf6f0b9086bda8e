"""The gateway between two real brokers: forwarding, validation, outage, restart, duplicates."""

from __future__ import annotations

from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import (
    AckMessage,
    DeadLetterMessage,
    EscalationHeader,
    TelemetryMessage,
)
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.gateway.conftest import (
    SITE,
    StartGateway,
    forwarded_before_sentinel,
    forwarded_ids,
    results,
)
from tests.utils.factories import make_escalation, make_result, make_state
from tests.utils.mqtt import Collector, publish_all, wait_until


def test_forwards_valid_messages_and_rejects_invalid(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway(telemetry_interval_s=0.5)
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
        # The gateway's own telemetry carries its counters up to the cloud.
        assert wait_until(
            lambda: any(
                t.counters.get("accepted.result") == 20
                and t.counters.get("rejected") == 3
                and t.counters.get("uplink.sent.escalation") == 1
                and t.queues.get("outbox_quota_bytes") == gw.gateway.uplink.quota_bytes
                and "outbox_bytes" in t.queues
                for t in gateway_telemetry(collector)
            ),
            timeout=10,
        ), [t.counters for t in gateway_telemetry(collector)]
    assert forwarded_ids(collector) == [msg_id for msg_id, _ in sent]  # in order
    assert gw.gateway.rejected.total() == 3  # the other site is not subscribed at all
    assert gw.gateway.accepted["result"] == 20
    # Batched: 20 results reached the cloud in fewer messages.
    carriers = [m for m in collector.messages if Topic.parse(m.topic).kind is Kind.RESULT_BATCH]
    assert carriers and len(carriers) < 20
    # Each invalid message is a dead letter with its reason, nothing silently dropped.
    letters = [
        decode(Topic.parse(m.topic), m.payload).message
        for m in collector.messages
        if Topic.parse(m.topic).kind is Kind.DEAD_LETTER
    ]
    assert all(isinstance(letter, DeadLetterMessage) for letter in letters)
    reasons = sorted(letter.reason for letter in letters if isinstance(letter, DeadLetterMessage))
    assert len(reasons) == 3
    assert "exceeds the 16384-byte limit" in reasons[2]
    assert any("Invalid JSON" in r for r in reasons) and any("not image/jpeg" in r for r in reasons)
    # State is forwarded retained: a late subscriber on the cloud side still sees it.
    with Collector(cloud.settings, topic_filter(Kind.STATE, site=SITE), client_id="late") as late:
        assert wait_until(
            lambda: any(m.topic == topic(SITE, "cam1", Kind.STATE) for m in late.messages)
        )


def gateway_telemetry(collector: Collector) -> list[TelemetryMessage]:
    out = []
    for m in collector.messages:
        if m.topic == topic(SITE, "gateway", Kind.TELEMETRY):
            message = decode(Topic.parse(m.topic), m.payload).message
            assert isinstance(message, TelemetryMessage)
            out.append(message)
    return out


def test_cloud_outage_and_gateway_restart_lose_nothing(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-sub") as collector:
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
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    cloud.kill()  # hold everything in the outbox so the duplicates meet there
    sent = results(5)
    publish_all(site.settings, [m for _, m in sent] + [m for _, m in sent])
    assert wait_until(lambda: gw.gateway.duplicates["result"] == 5)
    assert gw.gateway.accepted["result"] == 5
    cloud.start()
    with Collector(cloud.settings, "ec/v1/#", client_id="cloud-sub2") as collector:
        assert wait_until(lambda: len(forwarded_ids(collector)) >= 5)
        forwarded = forwarded_before_sentinel(site, collector)
    assert sorted(forwarded) == sorted(msg_id for msg_id, _ in sent)


def test_an_audit_sample_goes_up_under_the_lowest_class(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway()
    unsure, jpeg = make_escalation()
    audit, _ = make_escalation(reason="audit", audit=True)
    with Collector(cloud.settings, "ec/v1/#") as collector:
        publish_all(
            site.settings,
            [
                Outgoing(topic(SITE, "cam1", Kind.ESCALATION), encode(audit, jpeg)),
                Outgoing(topic(SITE, "cam1", Kind.ESCALATION), encode(unsure, jpeg)),
            ],
        )
        assert wait_until(
            lambda: (
                sorted(forwarded_ids(collector, Kind.ESCALATION))
                == sorted([audit.msg_id, unsure.msg_id])
            )
        )
    assert gw.gateway.accepted["audit"] == 1 and gw.gateway.accepted["escalation"] == 1
    # the PUBACK that counts it may land after the cloud subscriber has the message
    assert wait_until(lambda: gw.gateway.uplink.counters().get("sent.audit") == 1)
    forwarded = [
        decode(Topic.parse(m.topic), m.payload).message
        for m in collector.messages
        if Topic.parse(m.topic).kind is Kind.ESCALATION
    ]
    headers = [m for m in forwarded if isinstance(m, EscalationHeader)]
    assert {m.msg_id: m.audit for m in headers} == {
        audit.msg_id: True,
        unsure.msg_id: False,
    }


def test_devices_get_their_acks_even_when_the_gateway_does_not_wait_for_the_cloud(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    """``outbox_confirm_s = 0`` is the gateway's own uplink choice: what it committed to disk is
    still confirmed to the devices, which would otherwise send it again and again."""
    site, _ = brokers
    start_gateway(outbox_confirm_s=0)
    sent = results(5)
    with Collector(site.settings, topic_filter(Kind.ACK)) as collector:
        publish_all(site.settings, [m for _, m in sent])

        def acked() -> set[str]:
            ids: set[str] = set()
            for message in collector.messages:
                ack = decode(Topic.parse(message.topic), message.payload).message
                assert isinstance(ack, AckMessage)
                ids.update(ack.msg_ids)
            return ids

        assert wait_until(lambda: acked() == {msg_id for msg_id, _ in sent}), acked()
