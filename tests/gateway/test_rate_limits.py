"""A device that floods the site broker, between two real brokers: its neighbours lose nothing,
its excess is counted and dead-lettered (boundedly), nothing of it beyond its budget goes up."""

from __future__ import annotations

import threading
import time
from collections import Counter

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import DeadLetterMessage, ResultBatchMessage
from edgecascade.shared.mqtt import MqttLink, Outgoing
from edgecascade.shared.topics import Kind, Topic, topic
from tests.gateway.conftest import SITE, StartGateway
from tests.utils.factories import make_escalation, make_result
from tests.utils.mqtt import Collector, wait_until

RESULTS_PER_S, RESULT_BURST = 10.0, 10
ESCALATIONS_PER_S, ESCALATION_BURST = 1.0, 2
LIMITS = {
    "result": {
        "messages_per_s": RESULTS_PER_S,
        "burst_messages": RESULT_BURST,
        "bytes_per_s": 0,
        "burst_bytes": 1,
    },
    "escalation": {
        "messages_per_s": ESCALATIONS_PER_S,
        "burst_messages": ESCALATION_BURST,
        "bytes_per_s": 0,
        "burst_bytes": 1,
    },
    "absence_s": 3600,  # no device here is ever absent: no catch-up credit muddles the counts
    "dead_letter_interval_s": 1.0,
}


def uplinked(collector: Collector) -> Counter[tuple[str, str, str]]:
    """(device, kind, msg_id) of every result and escalation that reached the cloud broker."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is Kind.RESULT_BATCH:
            batch = decode(parsed, message.payload).message
            assert isinstance(batch, ResultBatchMessage)
            seen.update((e.device, "result", e.result.msg_id) for e in batch.results)
        elif parsed.kind in (Kind.RESULT, Kind.ESCALATION):
            msg_id = decode(parsed, message.payload).message.msg_id
            seen[(parsed.device, parsed.kind.value, msg_id)] += 1
    return seen


def dead_letters(collector: Collector) -> list[DeadLetterMessage]:
    out = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is Kind.DEAD_LETTER:
            letter = decode(parsed, message.payload).message
            assert isinstance(letter, DeadLetterMessage)
            out.append(letter)
    return out


def flood(port: int, messages: list[Outgoing]) -> float:
    """Publish with a plain paho client as fast as the broker takes them; seconds it took."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="noisy", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.monotonic()
    infos = [client.publish(m.topic, m.payload, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(timeout=30)
    took = time.monotonic() - start
    client.loop_stop()
    client.disconnect()
    return took


def well_behaved(link: MqttLink, messages: list[Outgoing], per_s: float) -> None:
    """Publish at ``per_s``, each confirmed, as an agent's outbox does."""
    start = time.monotonic()
    for n, message in enumerate(messages):
        pause = start + n / per_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        assert link.confirm(link.publish(message), 10), f"no PUBACK for {message.topic}"


Sent = dict[tuple[str, str, str], Outgoing]  # (device, kind, msg_id) -> the message


def sent_by(device: str, results: int, escalations: int) -> Sent:
    out: Sent = {}
    for _ in range(results):
        result = make_result(SITE, device)
        wire = Outgoing(topic(SITE, device, Kind.RESULT), encode(result))
        out[(device, "result", result.msg_id)] = wire
    for _ in range(escalations):
        header, jpeg = make_escalation(SITE, device)
        wire = Outgoing(topic(SITE, device, Kind.ESCALATION), encode(header, jpeg))
        out[(device, "escalation", header.msg_id)] = wire
    return out


def passed(ups: Counter[tuple[str, str, str]], device: str) -> Counter[str]:
    """How many of ``device``'s messages went up, per kind."""
    return Counter(kind for d, kind, _ in ups if d == device)


def test_a_flooding_device_costs_its_neighbours_nothing(
    brokers: tuple[MosquittoBroker, MosquittoBroker], start_gateway: StartGateway
) -> None:
    site, cloud = brokers
    gw = start_gateway(rate_limits=LIMITS)
    # The neighbours: 5 results/s (half their budget) and an escalation, for 4 s, each.
    neighbours = {device: sent_by(device, 20, 1) for device in ("cam1", "cam2")}
    # The flooder: 3,000 results and 300 escalations, as fast as the site broker takes them.
    noisy = sent_by("noisy", 3000, 300)
    with Collector(cloud.settings, "ec/v1/#") as collector:
        links = {d: MqttLink(site.settings, f"pub-{d}", persistent=False) for d in neighbours}
        for link in links.values():
            link.connect()
        threads = [
            threading.Thread(
                target=well_behaved, args=(links[d], list(neighbours[d].values()), 5.0)
            )
            for d in neighbours
        ]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        took = flood(site.port, list(noisy.values()))
        for thread in threads:
            thread.join(timeout=30)
        for link in links.values():
            link.stop()
        limiter = gw.gateway.limiter

        def flood_handled() -> bool:
            counts, up = limiter.counts(), passed(uplinked(collector), "noisy")
            return (
                up["result"] + counts.get("noisy.result", 0) == 3000
                and up["escalation"] + counts.get("noisy.escalation", 0) == 300
            )

        assert wait_until(flood_handled, timeout=60), limiter.counts()
        expected = {key for messages in neighbours.values() for key in messages}
        assert wait_until(lambda: expected <= set(uplinked(collector)), timeout=30)
        elapsed = time.monotonic() - start
        telemetry = gw.gateway.telemetry()
    # The flood was at least 50x the flooder's budget (3,000 results in ``took`` seconds).
    assert 3000 / took >= 50 * RESULTS_PER_S, f"the flood took {took:.1f} s: too slow to test"
    ups = uplinked(collector)
    # Every neighbour message went up exactly once; none was limited.
    assert all(ups[key] == 1 for key in expected)
    assert not any(key.startswith(("cam1.", "cam2.")) for key in limiter.counts())
    # The flooder got at most its budget over the whole run through; the rest was refused.
    noisy_up = passed(ups, "noisy")
    assert set(ups) - expected <= set(noisy)
    assert 0 < noisy_up["result"] <= RESULT_BURST + RESULTS_PER_S * elapsed
    assert 0 < noisy_up["escalation"] <= ESCALATION_BURST + ESCALATIONS_PER_S * elapsed
    assert all(n == 1 for (d, _, _), n in ups.items() if d == "noisy")
    counts = limiter.counts()
    assert counts["noisy.result"] == 3000 - noisy_up["result"]
    assert counts["noisy.escalation"] == 300 - noisy_up["escalation"]
    assert telemetry.counters["rate_limited.noisy.result"] == counts["noisy.result"]
    assert telemetry.counters["rate_limited"] == counts["noisy.result"] + counts["noisy.escalation"]
    assert gw.gateway.accepted["result"] == 40 + noisy_up["result"]
    # Dead letters: bounded, one per class and interval, each naming the device, class and limit.
    letters = dead_letters(collector)
    budgets = {"result": "10 messages/s (burst 10)", "escalation": "1 messages/s (burst 2)"}
    for kind, budget in budgets.items():
        mine = [letter for letter in letters if letter.topic == topic(SITE, "noisy", Kind(kind))]
        assert 1 <= len(mine) <= elapsed / 1.0 + 1  # dead_letter_interval_s
        claim = f"device 'noisy' exceeded its {kind} limit of {budget}"
        assert all(claim in letter.reason for letter in mine)
    assert {Topic.parse(letter.topic).device for letter in letters} == {"noisy"}
    assert gw.gateway.rejected.total() == 0  # rate limiting is not a validation failure
    assert gw.thread.is_alive()
