"""The device agent: read a frame, classify it, queue the result, maybe escalate, repeat.

Start-up reads top to bottom in :meth:`Agent.run`: load the model, open the source, open the
outbox, connect, loop until the stop event, drain, say goodbye. The camera loop never waits for the
network: results and escalations are committed to the disk outbox and a sender thread publishes
them whenever the broker is reachable.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import psutil

from edge_agent.escalation import escalation_payload
from edge_agent.feed import Emitter, FrameFeed, Prepared
from edge_agent.gating import SceneGate
from edge_agent.policy import EscalationPolicy
from edge_agent.rollout import RolloutClient
from edge_agent.settings import AgentSettings
from edge_agent.slots import ModelSlots
from edge_agent.sources import Frame, FrameSource, open_source
from edge_agent.telemetry import StageTimer, read_temperature
from edge_agent.verdicts import VerdictBook
from shared.codec import Decoded, decode, encode
from shared.contract import spec_of
from shared.errors import ContractError
from shared.manifest import load_public_key
from shared.messages import (
    ModelAckMessage,
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelOfferMessage,
    ModelRef,
    Prediction,
    ResultMessage,
    StateMessage,
    TelemetryMessage,
    VerdictMessage,
)
from shared.mqtt import MqttLink, Outgoing, Received
from shared.outbox import Outbox, OutboxSender
from shared.runtime.runtime import ModelRuntime
from shared.systemd import Notifier
from shared.topics import Kind, ModelSub, Topic, topic

if TYPE_CHECKING:
    from shared.runtime.runtime import Classification

logger = logging.getLogger(__name__)

SOFTWARE = "edgecascade-agent/0.1.0"
# What the agent publishes: QoS, retain and outbox class from the contract's rows.
STATE, RESULT, ESCALATION = spec_of(Kind.STATE), spec_of(Kind.RESULT), spec_of(Kind.ESCALATION)
TELEMETRY, ACK = spec_of(Kind.TELEMETRY), spec_of(Kind.MODEL, ModelSub.ACK)


@dataclass
class AgentStats:
    frames: int = 0
    results: int = 0
    escalations: int = 0
    over_budget: int = 0
    cooled_down: int = 0
    gated: int = 0
    capture_drops: int = 0
    verdicts: int = 0
    corrected: int = 0
    skipped: int = 0
    dropped: int = 0
    rejected: int = 0
    outbox_depth: int = 0


class Agent:
    def __init__(self, settings: AgentSettings, source: FrameSource | None = None) -> None:
        self.settings = settings
        self._source = source
        self.stats = AgentStats()
        self.timer = StageTimer()
        self.session = int(time.time() * 1000)
        self._model_ref: ModelRef | None = None
        self.gateway_online = threading.Event()
        self.notifier = Notifier()
        self._source_status = "starting"
        self.loop_seconds = 0.0
        self._next_runtime: ModelRuntime | None = None
        self._fps_mark = (time.monotonic(), 0)
        self._inferred = 0
        self._skipped: Callable[[], int] = lambda: 0
        self._link: MqttLink | None = None
        self._feed: FrameFeed | None = None
        # Messages to the device, by kind; each feature registers its handler here.
        self._handlers: dict[Kind, Callable[[Topic, Decoded], None]] = {
            Kind.STATE: self._on_gateway_state,
            Kind.VERDICT: self._on_verdict,
            Kind.MODEL: self._on_model,
        }

    # -- topics and messages ---------------------------------------------------------------------
    def _topic(self, kind: Kind) -> str:
        s = self.settings
        return topic(s.site, s.device, kind, prefix=s.mqtt.prefix)

    def _state(self, status: str) -> Outgoing:
        state = StateMessage(
            status="online" if status == "online" else "offline",
            session=self.session,
            role="agent",
            model=self._model_ref,
            capabilities=["classify", "escalate"],
            software=SOFTWARE,
            detail=f"{socket.gethostname()[:64]}; source {self._source_status}"[:1024],
        )
        return Outgoing(self._topic(Kind.STATE), encode(state), qos=STATE.qos, retain=STATE.retain)

    # -- main ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> AgentStats:
        s = self.settings
        slots = ModelSlots(s.data_dir / "slots")
        runtime = slots.load(s.model, s.threads)
        self._set_model(runtime)
        source, live = (self._source, False) if self._source else open_source(s.source)
        self._feed = FrameFeed(
            source,
            runtime,
            maxsize=s.source.queue_size if live else 2,
            newest_wins=live,  # replay sources lose nothing; live cameras keep the newest frame
            gate=SceneGate(s.gating.threshold) if s.gating.enabled else None,
        )
        self._skipped = lambda: int(getattr(source, "skipped", 0))
        outbox = Outbox(
            s.data_dir / "outbox.db",
            quota_bytes=int(s.outbox_quota_mb * 1024 * 1024),
            replay_window_s=s.outbox_replay_s,
        )
        link = MqttLink(
            s.mqtt,
            f"{s.site}.{s.device}",
            on_message=self._on_message,
            will=self._state("offline"),
            birth=lambda: self._state("online"),
        )
        self._link = link
        ready = None
        if s.gateway_id is not None:
            link.subscribe(topic(s.site, s.gateway_id, Kind.STATE, prefix=s.mqtt.prefix))
            ready = self.gateway_online.is_set
        sender = OutboxSender(outbox, link, ready=ready)
        policy = EscalationPolicy(s.escalation, runtime.labels)
        self.verdicts = VerdictBook()
        link.subscribe(topic(s.site, s.device, Kind.VERDICT, prefix=s.mqtt.prefix))
        self._rollout = self._start_rollout(slots, link, outbox)
        link.start()
        sender.start()
        self.notifier.ready(f"{s.site}/{s.device} running {runtime.card.name}")
        logger.info(
            "agent %s/%s: model %s %s, %d queued from before",
            s.site,
            s.device,
            runtime.card.name,
            runtime.sha256[:12],
            sum(outbox.depth().values()),
        )
        loop_started = time.perf_counter()
        emitter: Emitter[tuple[Prepared, Classification, ModelRef]] = Emitter(
            lambda item: self._emit(*item, outbox, policy)
        )
        try:
            self._loop(stop, runtime, self._feed, emitter, outbox)
        finally:
            emitter.close()  # every classified frame reaches the outbox before shutdown
            self.loop_seconds = time.perf_counter() - loop_started
            self.notifier.stopping()
            self._count_frames(self._feed)
            self.stats.skipped = getattr(source, "skipped", 0)
            self.stats.over_budget = policy.over_budget
            self.stats.cooled_down = policy.cooled_down
            self._rollout.stop()
            self._publish_telemetry(outbox)
            self._drain(outbox)
            sender.stop()
            link.stop(farewell=self._state("offline"))
            self.stats.outbox_depth = sum(outbox.depth().values())
            self.stats.dropped = sum(
                v for k, v in outbox.counters().items() if k.startswith(("dropped.", "expired."))
            )
            outbox.close()
            self._feed.close()
            self.stats.capture_drops = self._feed.dropped if live else 0
            self.stats.verdicts = self.verdicts.counts["verdicts.received"]
            self.stats.corrected = self.verdicts.counts["verdicts.corrected"]
            self._write_stats()
        return self.stats

    def _set_model(self, runtime: ModelRuntime) -> None:
        self._model_ref = ModelRef(
            name=runtime.card.name, version=runtime.card.version, sha256=runtime.sha256
        )

    def _start_rollout(self, slots: ModelSlots, link: MqttLink, outbox: Outbox) -> RolloutClient:
        """Model offers and chunks in, requests and acks out; the switch happens between frames."""
        s = self.settings
        key = load_public_key(s.model_public_key) if s.model_public_key else None
        prefix = s.mqtt.prefix

        def ack(message: ModelAckMessage) -> None:
            wire = topic(s.site, s.device, Kind.MODEL, ModelSub.ACK, prefix=prefix)
            outbox.put(
                ACK.queue_class, Outgoing(wire, encode(message), qos=ACK.qos), message.msg_id
            )

        def request(message: ModelChunkRequestMessage) -> None:
            link.publish(
                Outgoing(
                    topic(s.site, s.device, Kind.MODEL, ModelSub.REQUEST, prefix=prefix),
                    encode(message),
                )
            )

        def switch(runtime: ModelRuntime) -> None:
            self._next_runtime = runtime

        for sub in (ModelSub.OFFER, ModelSub.CHUNK):
            link.subscribe(topic(s.site, s.device, Kind.MODEL, sub, prefix=prefix))
        client = RolloutClient(
            slots, key, ack=ack, request=request, switch=switch, threads=s.threads
        )
        client.start()
        return client

    def _on_model(self, topic_: Topic, decoded: Decoded) -> None:
        message = decoded.message
        if isinstance(message, ModelOfferMessage):
            self._rollout.offer(message)
        elif isinstance(message, ModelChunkHeader):
            self._rollout.chunk(message, decoded.body)

    def _on_message(self, message: Received) -> None:
        """Messages to the device (paho's thread): validated, then dispatched by kind."""
        try:
            parsed = Topic.parse(message.topic)
            decoded = decode(parsed, message.payload)
            handler = self._handlers.get(parsed.kind)
            if handler is None:
                raise ContractError(f"no handler for {parsed.kind.value} messages")
        except ContractError as exc:
            self.stats.rejected += 1
            logger.warning("rejected message on %s: %s", message.topic, exc)
            return
        handler(parsed, decoded)

    def _on_verdict(self, topic_: Topic, decoded: Decoded) -> None:
        if isinstance(decoded.message, VerdictMessage) and not self.verdicts.apply(decoded.message):
            logger.info("verdict for unknown result %s", decoded.message.result_id)

    def _on_gateway_state(self, topic_: Topic, decoded: Decoded) -> None:
        if not isinstance(decoded.message, StateMessage):
            return
        online = decoded.message.status == "online"
        if online != self.gateway_online.is_set():
            logger.info("site gateway is %s", decoded.message.status)
        (self.gateway_online.set if online else self.gateway_online.clear)()

    def _loop(
        self,
        stop: threading.Event,
        runtime: ModelRuntime,
        feed: FrameFeed,
        emitter: Emitter[tuple[Prepared, Classification, ModelRef]],
        outbox: Outbox,
    ) -> None:
        """Stage 2 of the pipeline (see :mod:`edge_agent.feed`): invoke, then hand on."""
        s = self.settings
        period = 1.0 / s.source.fps
        next_due = time.monotonic()
        next_telemetry = time.monotonic() + s.telemetry_interval_s
        while not stop.is_set():
            self.notifier.watchdog()
            if self._next_runtime is not None:  # a new model was verified: switch between frames
                runtime, self._next_runtime = self._next_runtime, None
                feed.runtime = runtime
                self._set_model(runtime)
                if self._link is not None:
                    self._link.publish(self._state("online"))
            self._count_frames(feed)
            if s.source.max_frames is not None and self.stats.frames >= s.source.max_frames:
                break
            item = feed.get(timeout=0.5)
            self._report_source(feed.source)
            if item is None:
                if not feed.exhausted:
                    continue  # a live source with nothing new yet (or reconnecting)
                logger.info("source exhausted after %d frames", self.stats.frames)
                break
            self._inferred += 1
            tensor, preprocess_ms = item.tensor, item.preprocess_ms
            if item.runtime is not runtime:  # prepared for the model we just switched from
                t0 = time.perf_counter()
                tensor = runtime.preprocess(item.frame.image)
                preprocess_ms = (time.perf_counter() - t0) * 1000
            assert self._model_ref is not None
            emitter.put((item, runtime.classify_tensor(tensor, preprocess_ms), self._model_ref))
            if time.monotonic() >= next_telemetry:
                self._count_frames(feed)
                self._publish_telemetry(outbox)
                next_telemetry += s.telemetry_interval_s
            next_due += period
            delay = next_due - time.monotonic()
            if delay > 0.002:  # shorter waits cost more than they save (thread switches)
                stop.wait(delay)
            elif delay < 0:
                next_due = time.monotonic()  # behind: do not try to catch up in a burst

    def _count_frames(self, feed: FrameFeed) -> None:
        """``frames`` counts every frame taken from the source: inferred or gated."""
        self.stats.gated = feed.gated
        self.stats.frames = self._inferred + feed.gated

    def _report_source(self, source: FrameSource) -> None:
        """Re-publish the retained state when the source's status changes."""
        status = getattr(source, "status", "ok")
        if status != self._source_status:
            self._source_status = status
            if self._link is not None and self._link.connected:
                self._link.publish(self._state("online"))

    def _emit(
        self,
        item: Prepared,
        result: Classification,
        model: ModelRef,
        outbox: Outbox,
        policy: EscalationPolicy,
    ) -> None:
        """Stage 3: decide, commit the result to the outbox, escalate (the emit thread)."""
        frame = item.frame
        t0 = time.perf_counter()
        self.timer.add("capture", item.capture_ms)
        for stage, ms in result.timings_ms.items():
            self.timer.add(stage, ms)
        top = [Prediction(index=i, label=label, score=score) for i, label, score in result.top(3)]
        decision = policy.decide(result.probabilities, top[0].label, frame.image)
        message = ResultMessage(
            frame_id=frame.frame_id,
            captured_at=frame.captured_at,
            model=model,
            top=top,
            latency_ms=dict(result.timings_ms),
            escalated=decision.escalate,
            ground_truth=frame.ground_truth,
        )
        wire = Outgoing(self._topic(Kind.RESULT), encode(message), qos=RESULT.qos)
        outbox.put(RESULT.queue_class, wire, message.msg_id)
        self.verdicts.remember(message)
        self.stats.results += 1
        if decision.escalate:
            self._escalate(frame, message, decision.reason, outbox)
        self.timer.add("publish", (time.perf_counter() - t0) * 1000)

    def _escalate(self, frame: Frame, result: ResultMessage, reason: str, outbox: Outbox) -> None:
        header, payload = escalation_payload(frame.image, result, reason, self.settings.escalation)
        wire = Outgoing(self._topic(Kind.ESCALATION), payload, qos=ESCALATION.qos)
        outbox.put(ESCALATION.queue_class, wire, header.msg_id)
        self.stats.escalations += 1

    def _publish_telemetry(self, outbox: Outbox) -> None:
        proc = psutil.Process()
        counters = outbox.counters()
        counters.update(
            frames_skipped=self._skipped(),
            escalations=self.stats.escalations,
            gated=self.stats.gated,
        )
        if self._feed is not None:
            counters["drops.capture"] = self._feed.dropped
        counters.update(self.verdicts.counts)
        message = TelemetryMessage(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            memory_rss_mb=proc.memory_info().rss / 1e6,
            temperature_c=read_temperature(),
            fps=self._fps(),
            frames=self.stats.frames,
            latency_ms=self.timer.percentiles(),
            queues={f"outbox.{k}": v for k, v in outbox.depth().items()},
            counters=counters,
            model=self._model_ref,
        )
        wire = Outgoing(self._topic(Kind.TELEMETRY), encode(message), qos=TELEMETRY.qos)
        outbox.put(TELEMETRY.queue_class, wire, message.msg_id)

    def _fps(self) -> float:
        """Frames per second since the previous telemetry message."""
        now = time.monotonic()
        last_at, last_frames = self._fps_mark
        self._fps_mark = (now, self.stats.frames)
        elapsed = now - last_at
        return (self.stats.frames - last_frames) / elapsed if elapsed > 0 else 0.0

    def _drain(self, outbox: Outbox) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while sum(outbox.depth().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = sum(outbox.depth().values())
        if left:
            logger.warning("stopping with %d message(s) still queued on disk", left)

    def _write_stats(self) -> None:
        path = self.settings.data_dir / "stats.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.stats)))
        os.replace(tmp, path)
        logger.info("agent stopped: %s", asdict(self.stats))
