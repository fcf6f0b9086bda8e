"""The site gateway: site broker <-> disk outboxes <-> cloud broker.

Uplink: every device message is validated against the contract and de-duplicated by message id
before it is accepted. An accepted message is committed to the uplink outbox (in groups, by
:class:`gateway.intake.Intake`) and only then acknowledged to the site broker (manual ack), so
a gateway killed at any point either still has the message on disk or gets it again from the
broker's persistent session. Messages that fail
validation go to the dead-letter topic with the reason, counted, and are acknowledged. Results
leave in batches (:class:`gateway.aggregate.ResultBatcher`), telemetry as per-window rollups,
escalations first of all.

Downlink: verdicts and model offers from the cloud for the site's devices are committed to a second
outbox and forwarded to the site broker the same way. Model artifacts are fetched once per site
(:mod:`gateway.modelcache`) and served to the devices from disk. A ``cmd/resync`` from the cloud is
answered with the whole site state.

Every ``telemetry_interval_s`` the gateway publishes its own telemetry on
``<site>/<gateway>/telemetry``: CPU and memory, the depth of both outboxes per class, and its
counters (accepted, duplicates, rejected and downlinked per kind; sent, expired and dropped per
outbox class; the model cache's).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import psutil

from gateway.aggregate import ResultBatcher, SiteState, TelemetryRollup
from gateway.intake import Entry, Intake, Pending
from gateway.modelcache import ModelCache
from gateway.settings import GatewaySettings
from shared.codec import Decoded, decode, encode
from shared.errors import ContractError
from shared.manifest import load_public_key
from shared.messages import (
    CommandMessage,
    DeadLetterMessage,
    Message,
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelOfferMessage,
    ReplyMessage,
    StateMessage,
    TelemetryMessage,
)
from shared.mqtt import MqttLink, Outgoing, Received
from shared.outbox import DEFAULT_CLASSES, ClassPolicy, Outbox, OutboxSender, PutOutcome
from shared.systemd import Notifier
from shared.topics import Kind, Topic, topic, topic_filter

logger = logging.getLogger(__name__)

SOFTWARE = "edgecascade-gateway/0.1.0"
# Device -> cloud: the outbox class each kind is queued under (escalations go first).
UPLINK = {
    Kind.RESULT: "result",
    Kind.ESCALATION: "escalation",
    Kind.TELEMETRY: "telemetry",
    Kind.STATE: "state",
}
UPLINK_CLASSES = {
    **DEFAULT_CLASSES,
    "model": ClassPolicy(priority=1, ttl_s=7 * 86_400.0),
    "deadletter": ClassPolicy(priority=2, ttl_s=7 * 86_400.0),
}
DOWNLINK_CLASSES = {
    "verdict": ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    "model": ClassPolicy(priority=1, ttl_s=6 * 3600.0),
}
PAYLOAD_HEAD = 64  # bytes of a rejected payload kept (hex) in its dead letter


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.session = int(time.time() * 1000)
        self.accepted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.downlinked: Counter[str] = Counter()
        self.site_state = SiteState()
        self.rollup = TelemetryRollup(settings.telemetry_window_s)
        s = settings
        self.batcher = ResultBatcher(
            s.site,
            s.gateway_id,
            s.cloud_mqtt.prefix,
            s.batch.max_results,
            s.batch.max_bytes,
            compress=s.batch.compress,
        )
        self._site_link: MqttLink | None = None
        self._cloud_link: MqttLink | None = None
        self.uplink: Outbox | None = None
        self.cache: ModelCache | None = None
        self.intake: Intake | None = None

    # -- topics ------------------------------------------------------------------------------------
    def _topic(self, kind: Kind, sub: str | None = None, device: str | None = None) -> str:
        s = self.settings
        return topic(s.site, device or s.gateway_id, kind, sub, prefix=s.cloud_mqtt.prefix)

    def _state(self, status: str) -> Outgoing:
        state = StateMessage(
            status="online" if status == "online" else "offline",
            session=self.session,
            role="gateway",
            capabilities=["forward", "batch", "rollup", "model-cache", "resync"],
            software=SOFTWARE,
        )
        return Outgoing(self._topic(Kind.STATE), encode(state), qos=1, retain=True)

    def telemetry(self, uplink: Outbox, downlink: Outbox) -> TelemetryMessage:
        """The gateway's own health: resources, queue depths and every counter it keeps."""
        counters: dict[str, int] = {}
        for name, counter in (
            ("accepted", self.accepted),
            ("duplicates", self.duplicates),
            ("downlinked", self.downlinked),
        ):
            counters.update({f"{name}.{key}": value for key, value in counter.items()})
        counters["rejected"] = sum(self.rejected.values())  # reasons are in the dead letters
        counters.update({f"uplink.{k}": v for k, v in uplink.counters().items()})
        counters.update({f"downlink.{k}": v for k, v in downlink.counters().items()})
        if self.cache is not None:
            counters.update({f"cache.{k}": v for k, v in self.cache.counts.items()})
        queues = {f"uplink.{k}": v for k, v in uplink.depth().items()}
        queues.update({f"downlink.{k}": v for k, v in downlink.depth().items()})
        return TelemetryMessage(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            memory_rss_mb=psutil.Process().memory_info().rss / 1e6,
            fps=0.0,
            queues=queues,
            counters=counters,
        )

    def _queue_telemetry(self, uplink: Outbox, downlink: Outbox) -> None:
        message = self.telemetry(uplink, downlink)
        wire = Outgoing(self._topic(Kind.TELEMETRY), encode(message), qos=0)
        uplink.put("telemetry", wire, message.msg_id)

    # -- main --------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        s = self.settings
        quota = int(s.outbox_quota_mb * 1024 * 1024)
        uplink = Outbox(
            s.data_dir / "outbox.db",
            classes=UPLINK_CLASSES,
            quota_bytes=quota,
            dedup_window_s=s.dedup_window_s,
            replay_window_s=s.outbox_replay_s,
        )
        downlink = Outbox(
            s.data_dir / "downlink.db",
            classes=DOWNLINK_CLASSES,
            quota_bytes=quota,
            dedup_window_s=s.dedup_window_s,
            replay_window_s=s.outbox_replay_s,
        )
        self.uplink = uplink
        cloud = MqttLink(
            s.cloud_mqtt,
            f"{s.site}.{s.gateway_id}.uplink",
            on_message=lambda message: self._from_cloud(message, downlink),
            manual_ack=True,
            will=self._state("offline"),
            birth=lambda: self._state("online"),
        )
        site = MqttLink(
            s.site_mqtt,
            f"{s.site}.{s.gateway_id}.intake",
            on_message=self._from_site,
            manual_ack=True,
            # Devices publish only while this retained state says online: it is published after
            # the subscriptions, so "online" means nothing sent to the site broker is lost.
            will=self._state("offline"),
            birth=lambda: self._state("online"),
        )
        self._site_link, self._cloud_link = site, cloud
        self.intake = Intake(uplink, site)
        key = load_public_key(s.model_public_key) if s.model_public_key else None
        self.cache = ModelCache(
            s.data_dir / "models",
            key,
            lambda request: self._publish(
                cloud, Outgoing(self._topic(Kind.MODEL, "request"), encode(request))
            ),
            quota_bytes=int(s.model_cache_mb * 1024 * 1024),
        )
        for kind in UPLINK:
            site.subscribe(topic_filter(kind, site=s.site, prefix=s.site_mqtt.prefix))
        for sub in ("ack", "request"):
            site.subscribe(
                topic_filter(Kind.MODEL, site=s.site, sub=sub, prefix=s.site_mqtt.prefix)
            )
        prefix = s.cloud_mqtt.prefix
        cloud.subscribe(topic_filter(Kind.VERDICT, site=s.site, prefix=prefix))
        cloud.subscribe(topic_filter(Kind.MODEL, site=s.site, sub="offer", prefix=prefix))
        cloud.subscribe(self._topic(Kind.MODEL, "chunk"))
        cloud.subscribe(topic_filter(Kind.CMD, site=s.site, device=s.gateway_id, prefix=prefix))
        senders = [
            OutboxSender(
                uplink,
                cloud,
                batch=s.batch.max_results,
                coalesce=self.batcher,
                linger_s=s.batch.linger_ms / 1000,
            ),
            OutboxSender(downlink, site),
        ]
        self.cache.start()
        self.intake.start()
        cloud.start()
        for sender in senders:
            sender.start()
        site.start()
        logger.info(
            "gateway %s: site broker %s:%d -> cloud broker %s:%d, %d up and %d down queued",
            s.site,
            s.site_mqtt.host,
            s.site_mqtt.port,
            s.cloud_mqtt.host,
            s.cloud_mqtt.port,
            sum(uplink.depth().values()),
            sum(downlink.depth().values()),
        )
        notifier = Notifier()
        notifier.ready(f"forwarding site {s.site}")
        next_telemetry = time.monotonic() + s.telemetry_interval_s
        try:
            while not stop.wait(0.5):
                notifier.watchdog()
                self._flush_rollups(uplink, time.time())
                if time.monotonic() >= next_telemetry:
                    next_telemetry += s.telemetry_interval_s
                    self._queue_telemetry(uplink, downlink)
        finally:
            notifier.stopping()
            # Drain the intake while the site link can still carry its acknowledgements; what
            # arrives after that is left unacknowledged: the broker delivers it to the next session.
            self.intake.stop()
            site.stop(farewell=self._state("offline"))
            self._flush_rollups(uplink, time.time(), everything=True)
            for sender in senders:
                sender.stop()
            self.cache.stop()
            cloud.stop(farewell=self._state("offline"))
            uplink.close()
            downlink.close()
            logger.info(
                "gateway stopped: accepted %s, duplicates %s, rejected %s, downlinked %s",
                dict(self.accepted),
                dict(self.duplicates),
                dict(self.rejected),
                dict(self.downlinked),
            )

    # -- uplink: site -> cloud ---------------------------------------------------------------------
    def _from_site(self, message: Received) -> None:
        """Validate, then hand to the intake, which commits and acknowledges (paho's thread)."""
        assert self.intake is not None
        s = self.settings
        try:
            parsed = Topic.parse(message.topic)
            if parsed.device == s.gateway_id:  # our own retained state on the site broker
                self.intake.submit(Pending(message))
                return
            if parsed.site != s.site:
                raise ContractError(f"topic {message.topic!r} is not of site {s.site!r}")
            decoded = decode(parsed, message.payload)
        except ContractError as exc:
            self.intake.submit(Pending(message, self._dead_letter(message, exc)))
            return
        self.site_state.saw(parsed.device, time.time())
        self.intake.submit(self._accept(parsed, decoded, message))

    def _accept(self, parsed: Topic, decoded: Decoded, message: Received) -> Pending:
        """What to commit for a valid device message (and the site state it updates)."""
        msg = decoded.message
        if parsed.kind is Kind.MODEL:
            if isinstance(msg, ModelChunkRequestMessage):
                self._serve_chunks(parsed, msg)
                return Pending(message)
            # acks go up to the cloud's rollout
            return self._pending(message, "model", Outgoing(message.topic, message.payload), msg)
        if isinstance(msg, StateMessage):
            self.site_state.state(parsed.device, msg)
        if isinstance(msg, TelemetryMessage):
            self.site_state.telemetry(parsed.device, msg)
            if self.rollup.window_s > 0:
                self.rollup.add(parsed.device, msg, time.time())
                return Pending(message)
        retain = parsed.kind is Kind.STATE
        qos = message.qos if parsed.kind is Kind.TELEMETRY else 1
        outgoing = Outgoing(message.topic, message.payload, qos=qos, retain=retain)
        return self._pending(message, UPLINK[parsed.kind], outgoing, msg)

    def _pending(self, message: Received, klass: str, outgoing: Outgoing, msg: Message) -> Pending:
        return Pending(message, (klass, outgoing, msg.msg_id), lambda o: self._tally(klass, o))

    def _tally(self, klass: str, outcome: PutOutcome) -> None:
        if outcome == "queued":
            self.accepted[klass] += 1
        elif outcome == "duplicate":
            self.duplicates[klass] += 1

    def _queue(self, outbox: Outbox, klass: str, outgoing: Outgoing, msg: Message) -> None:
        self._tally(klass, outbox.put(klass, outgoing, msg.msg_id))

    def _dead_letter(self, message: Received, exc: ContractError) -> Entry:
        reason = str(exc)
        self.rejected[reason.split(":", 1)[0][:80]] += 1
        logger.warning("dead letter from %s: %s", message.topic[:200], reason)
        letter = DeadLetterMessage(
            topic=message.topic[:1024],
            reason=reason[:1024],
            payload_size=len(message.payload),
            payload_head=message.payload[:PAYLOAD_HEAD].hex(),
        )
        return "deadletter", Outgoing(self._topic(Kind.DEAD_LETTER), encode(letter)), letter.msg_id

    def _flush_rollups(self, uplink: Outbox, now: float, everything: bool = False) -> None:
        for device, rollup in self.rollup.due(now, everything):
            wire = self._topic(Kind.TELEMETRY_ROLLUP, device=device)
            self._queue(uplink, "telemetry", Outgoing(wire, encode(rollup), qos=1), rollup)

    @staticmethod
    def _publish(link: MqttLink, message: Outgoing) -> None:
        link.publish(message)

    def _serve_chunks(self, parsed: Topic, request: ModelChunkRequestMessage) -> None:
        assert self.cache is not None and self._site_link is not None
        wire = topic(parsed.site, parsed.device, Kind.MODEL, "chunk", prefix=parsed.prefix)
        for header, body in self.cache.serve(request):
            self._site_link.publish(Outgoing(wire, encode(header, body)))

    # -- downlink: cloud -> site -------------------------------------------------------------------
    def _from_cloud(self, message: Received, downlink: Outbox) -> None:
        assert self._cloud_link is not None
        try:
            self._route_down(message, downlink)
        except ContractError as exc:
            self.rejected[f"downlink {str(exc).split(':', 1)[0][:70]}"] += 1
            logger.warning("refused from the cloud on %s: %s", message.topic[:200], exc)
        finally:
            self._cloud_link.ack(message)

    def _route_down(self, message: Received, downlink: Outbox) -> None:
        s = self.settings
        parsed = Topic.parse(message.topic)
        if parsed.site != s.site:
            raise ContractError(f"topic {message.topic!r} is not of site {s.site!r}")
        decoded = decode(parsed, message.payload)
        msg = decoded.message
        if isinstance(msg, ModelChunkHeader):
            assert self.cache is not None
            self.cache.chunk(msg, decoded.body)
            return
        if isinstance(msg, CommandMessage):
            self._command(parsed, msg)
            return
        if isinstance(msg, ModelOfferMessage):
            assert self.cache is not None
            self.cache.offer(msg.manifest)  # refuses a wrongly signed model before the devices
        klass = "verdict" if parsed.kind is Kind.VERDICT else "model"
        site_topic = topic(
            parsed.site, parsed.device, parsed.kind, parsed.sub, prefix=s.site_mqtt.prefix
        )
        if downlink.put(klass, Outgoing(site_topic, message.payload), msg.msg_id) == "queued":
            self.downlinked[klass] += 1

    def _command(self, parsed: Topic, command: CommandMessage) -> None:
        assert self.uplink is not None and parsed.sub is not None
        handlers: dict[str, Callable[[CommandMessage], object]] = {"resync": self._resync}
        handler = handlers.get(parsed.sub)
        if handler is None:
            error = f"unknown command {parsed.sub!r}; known: {sorted(handlers)}"
            reply = ReplyMessage(correlation=command.correlation, status="error", error=error)
        else:
            data = json.loads(json.dumps(handler(command)))
            reply = ReplyMessage(correlation=command.correlation, status="ok", data=data)
        wire = self._topic(Kind.REPLY, parsed.sub)
        self.uplink.put("state", Outgoing(wire, encode(reply)), reply.msg_id)

    def _resync(self, command: CommandMessage) -> dict[str, object]:
        """The whole site state; each device's state is also re-published, retained."""
        assert self.uplink is not None
        for device, state in dict(self.site_state.states).items():
            wire = self._topic(Kind.STATE, device=device)
            # A fresh outbox id: the original state message was already forwarded once.
            self.uplink.put("state", Outgoing(wire, encode(state), retain=True), None)
        depth = self.uplink.depth()
        return {
            "site": self.settings.site,
            "gateway": self.settings.gateway_id,
            "devices": self.site_state.snapshot(),
            "outbox": {"depth": depth, "counters": self.uplink.counters()},
        }
