"""What ``bench cascade`` sees on the wire: answers at the site, bytes on the site -> cloud link.

Two listeners, both plain MQTT subscribers beside the real components (they change nothing):

- **site broker**: every edge ``result`` (its top-1, ground truth, capture and creation times)
  and every ``verdict`` coming down to a device, stamped with its arrival time. A device
  subscribes to the same broker, so the arrival here is when the cloud's answer reaches it;
- **cloud broker**: every payload the gateway sends up for the site, by device and kind, with
  its length on the wire. A result batch carries several devices' results; its bytes are split
  between them in proportion to the length of each one's entries (its JSON, inflated first when
  the gateway compresses batches). Results are counted under
  ``results`` whether they went up in a batch or alone.

Copies that arrive twice (at-least-once delivery) are answered once (first arrival) but their
bytes count, since they did cross the link.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgecascade.shared.codec import batch_json, decode
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import ResultMessage, VerdictMessage
from edgecascade.shared.mqtt import MqttLink, Received
from edgecascade.shared.topics import Kind, Topic, topic_filter

# What crosses the site -> cloud link per frame; state and telemetry roll-ups are per device.
# (a lone result leaves the gateway as it came, not as a batch of one).
FRAME_KINDS = (Kind.RESULT_BATCH, Kind.RESULT, Kind.ESCALATION)
UPLINK_KINDS = frozenset(
    {*FRAME_KINDS, Kind.STATE, Kind.TELEMETRY_ROLLUP, Kind.TELEMETRY, Kind.DEAD_LETTER}
)


def counted_gateway_env(compress: bool) -> dict[str, str]:
    """The gateway of a bench that counts bytes on the wire: ``batch.compress`` as named, no
    replay (a reconnect would send up to ``outbox_replay_s`` of results again, counted twice) and
    no confirmations (a bench without the cloud's ingest confirms nothing: every result would go
    up again after ``outbox_confirm_s``, counted twice)."""
    return {
        "EC_GATEWAY_BATCH__COMPRESS": "true" if compress else "false",
        "EC_GATEWAY_OUTBOX_REPLAY_S": "0",
        "EC_GATEWAY_OUTBOX_CONFIRM_S": "0",
    }


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    """One edge result as published by the device."""

    frame_id: str
    label: str
    top: tuple[tuple[int, float], ...]  # (class index, probability), best first
    ground_truth: str | None
    escalated: bool
    compute_ms: float  # preprocess + invoke + postprocess, as the device measured them
    answered_at: float  # the result message's creation time on the device
    model_version: str = ""  # the version of the model that produced it


@dataclass(frozen=True, slots=True)
class CloudAnswer:
    label: str
    arrived_at: float  # when the verdict reached the site broker's subscribers


@dataclass
class DeviceTraffic:
    answers: dict[str, EdgeAnswer] = field(default_factory=dict)  # by result id
    verdicts: dict[str, CloudAnswer] = field(default_factory=dict)  # by result id
    uplink_bytes: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    uplink_messages: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uplinked_results: int = 0


class WireTap:
    """Subscribers on the site and cloud brokers of one site; per-device traffic."""

    def __init__(self, site: str, site_mqtt: MqttSettings, cloud_mqtt: MqttSettings) -> None:
        self.site = site
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceTraffic] = defaultdict(DeviceTraffic)
        self._site = MqttLink(
            site_mqtt, f"bench-cascade-site.{site}", on_message=self._on_site, persistent=False
        )
        for kind in (Kind.RESULT, Kind.VERDICT):
            self._site.subscribe(topic_filter(kind, site, prefix=site_mqtt.prefix))
        self._cloud = MqttLink(
            cloud_mqtt, f"bench-cascade-cloud.{site}", on_message=self._on_cloud, persistent=False
        )
        for kind in sorted(UPLINK_KINDS):
            self._cloud.subscribe(topic_filter(kind, site, prefix=cloud_mqtt.prefix))

    def __enter__(self) -> WireTap:
        self._site.connect()
        self._cloud.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self._site.stop()
        self._cloud.stop()

    def device(self, name: str) -> DeviceTraffic:
        with self._lock:
            return self._devices[name]

    def snapshot(self, names: Iterable[str]) -> dict[str, DeviceTraffic]:
        """A copy of the named devices' traffic so far (what later arrives is not in it)."""
        with self._lock:
            return {
                name: DeviceTraffic(
                    answers=dict(self._devices[name].answers),
                    verdicts=dict(self._devices[name].verdicts),
                    uplink_bytes=defaultdict(float, self._devices[name].uplink_bytes),
                    uplink_messages=defaultdict(int, self._devices[name].uplink_messages),
                    uplinked_results=self._devices[name].uplinked_results,
                )
                for name in names
            }

    # -- site broker: answers --------------------------------------------------------------------
    def _on_site(self, message: Received) -> None:
        arrived = time.time()
        try:
            topic = Topic.parse(message.topic)
            decoded = decode(topic, message.payload).message
        except ContractError:
            return  # not ours to judge: the gateway dead-letters what breaks the contract
        with self._lock:
            traffic = self._devices[topic.device]
            if isinstance(decoded, ResultMessage) and decoded.msg_id not in traffic.answers:
                traffic.answers[decoded.msg_id] = EdgeAnswer(
                    frame_id=decoded.frame_id,
                    label=decoded.top[0].label if decoded.top else "",  # a detector's may be empty
                    top=tuple((p.index, p.score) for p in decoded.top),
                    ground_truth=decoded.ground_truth,
                    escalated=decoded.escalated,
                    compute_ms=sum(decoded.latency_ms.values()),
                    answered_at=decoded.ts,
                    model_version=decoded.model.version,
                )
            elif isinstance(decoded, VerdictMessage) and decoded.result_id not in traffic.verdicts:
                label = decoded.top[0].label if decoded.top else ""  # a detector's: no box found
                traffic.verdicts[decoded.result_id] = CloudAnswer(label, arrived)

    # -- cloud broker: bytes uplinked ------------------------------------------------------------
    def _on_cloud(self, message: Received) -> None:
        try:
            topic = Topic.parse(message.topic)
        except ContractError:
            return
        size = len(message.payload)
        if topic.kind is Kind.RESULT_BATCH:
            self._split_batch(message.payload, size)
            return
        kind = Kind.RESULT_BATCH if topic.kind is Kind.RESULT else topic.kind
        with self._lock:
            traffic = self._devices[topic.device]
            traffic.uplink_bytes[kind.value] += size
            traffic.uplink_messages[kind.value] += 1
            if topic.kind is Kind.RESULT:
                traffic.uplinked_results += 1

    def _split_batch(self, payload: bytes, size: int) -> None:
        entries = json.loads(batch_json(payload))["results"]
        lengths: dict[str, int] = defaultdict(int)
        counts: dict[str, int] = defaultdict(int)
        for entry in entries:
            lengths[entry["device"]] += len(json.dumps(entry, separators=(",", ":")))
            counts[entry["device"]] += 1
        total = sum(lengths.values())
        kind = Kind.RESULT_BATCH.value
        with self._lock:
            for device, length in lengths.items():
                traffic = self._devices[device]
                traffic.uplink_bytes[kind] += size * length / total
                traffic.uplink_messages[kind] += 1
                traffic.uplinked_results += counts[device]
