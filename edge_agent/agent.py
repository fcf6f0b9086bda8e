"""The device agent: read a frame, classify it (or detect in it), queue the result, maybe
escalate, repeat.

Start-up reads top to bottom in ``Agent.__init__``: load the model, open the source, the frame
feed, the outbox and the link, build the sender, the policy and the model rollout
(:mod:`edge_agent.wiring`). ``Agent.run`` only starts them, loops until the stop event, drains
and says goodbye. The camera loop never waits for the network: results and escalations are
committed to the disk outbox and a sender thread publishes them whenever the broker is reachable.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import psutil

from edgecascade.edge_agent.commands import AgentCommands
from edgecascade.edge_agent.emit import Emitted, ResultEmitter
from edgecascade.edge_agent.feed import Emitter
from edgecascade.edge_agent.gating import SceneGate
from edgecascade.edge_agent.live import LiveSettings
from edgecascade.edge_agent.models import EdgeModel, invoke_tensor
from edgecascade.edge_agent.monitor import MonitorLog
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.edge_agent.slots import ModelSlots
from edgecascade.edge_agent.sources import FrameSource, open_source
from edgecascade.edge_agent.stats import AgentStats
from edgecascade.edge_agent.telemetry import StageTimer, disk_percent, read_temperature, uptime_s
from edgecascade.edge_agent.verdicts import VerdictBook
from edgecascade.edge_agent.wiring import open_feed, open_link, open_outbox, open_rollout
from edgecascade.shared.codec import Decoded, decode, encode
from edgecascade.shared.contract import spec_of
from edgecascade.shared.diagnostics import install_log_ring
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import (
    AckMessage,
    CommandMessage,
    ModelRef,
    StateMessage,
    TelemetryMessage,
    VerdictMessage,
)
from edgecascade.shared.model_messages import ModelChunkHeader, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing, Received
from edgecascade.shared.outbox import OutboxSender
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.systemd import Notifier
from edgecascade.shared.topics import Kind, Topic, topic

if TYPE_CHECKING:
    from edgecascade.shared.runtime.preprocess import DecodePlan

logger = logging.getLogger(__name__)

SOFTWARE = "edgecascade-agent/0.1.0"
# What the agent publishes: QoS, retain and outbox class from the contract's rows.
STATE, TELEMETRY = spec_of(Kind.STATE), spec_of(Kind.TELEMETRY)
__all__ = ["Agent", "AgentStats", "model_ref"]


def model_ref(runtime: EdgeModel) -> ModelRef:
    """What the agent says it runs (in its state, telemetry and every result)."""
    return ModelRef(name=runtime.card.name, version=runtime.card.version, sha256=runtime.sha256)


class Agent:
    """One device's agent, every part built here; :meth:`run` starts them, loops and stops them."""

    def __init__(self, settings: AgentSettings, source: FrameSource | None = None) -> None:
        install_log_ring()  # first: diagnostics show the start-up's lines too
        self.config = LiveSettings(settings)  # the settings in force: start-up + remote config
        self.config.restore()
        s = self.settings
        self.stats = AgentStats()
        self.timer = StageTimer()
        self.monitor = MonitorLog(settings.data_dir)
        self._started_at = time.monotonic()
        self.session = int(time.time() * 1000)
        self.gateway_online = threading.Event()
        self.notifier = Notifier()
        self.loop_seconds = 0.0
        self._source_status = "starting"
        self._next_runtime: EdgeModel | None = None  # verified by the rollout, not yet running
        self._fps_mark = (time.monotonic(), 0)
        self._inferred = 0
        # Messages to the device, by kind; each feature registers its handler here.
        self._handlers: dict[Kind, Callable[[Topic, Decoded], None]] = {
            Kind.STATE: self._on_gateway_state,
            Kind.ACK: self._on_ack,
            Kind.VERDICT: self._on_verdict,
            Kind.MODEL: self._on_model,
            Kind.CMD: self._on_command,
        }
        slots = ModelSlots(s.data_dir / "slots")
        self.runtime = slots.load(s.model, s.threads, s.runtime.accelerator())
        self._model_ref = model_ref(self.runtime)
        self.source, self.live = (
            (source, False) if source else open_source(s.source, self._decode_plan)
        )
        self.feed = open_feed(s, self.source, self.runtime, live=self.live)
        self.outbox = open_outbox(s)
        self.link = open_link(s, self._on_message, self._state)
        ready = self.gateway_online.is_set if s.gateway_id is not None else None
        self.sender = OutboxSender(self.outbox, self.link, ready=ready, confirm_after_s=s.confirm_s)
        self.verdicts = VerdictBook()
        self.results = ResultEmitter(
            self.config,
            self.outbox,
            self.verdicts,
            self.stats,
            self.timer,
            self._topic,
            self.runtime.labels,
        )
        self.rollout = open_rollout(s, slots, self.link, self.outbox, self._switch)
        self.commands = AgentCommands(
            self.config,
            self.outbox,
            lambda kind, name: self._topic(kind, name),
            lambda: self.results.labels,  # the labels the emitter's policy is built with
            self._config_applied,
        )
        self.emitter: Emitter[Emitted] = Emitter(self.results.emit_batch)

    def _decode_plan(self, height: int, width: int) -> DecodePlan:
        """How small the source may decode a frame: for the model running now (the feed's
        thread; after a switch, the next frame follows the new model)."""
        return self.runtime.decode_plan(height, width)

    @property
    def settings(self) -> AgentSettings:
        """The settings in force (a remote config swaps them whole: read once per use)."""
        return self.config.current

    # -- topics and messages ---------------------------------------------------------------------
    def _topic(self, kind: Kind, sub: str | None = None) -> str:
        s = self.settings
        return topic(s.site, s.device, kind, sub, prefix=s.mqtt.prefix)

    def _state(self, status: str) -> Outgoing:
        state = StateMessage(
            status="online" if status == "online" else "offline",
            session=self.session,
            role="agent",
            model=self._model_ref,
            capabilities=[
                "detect" if isinstance(self.runtime, Detector) else "classify",
                "escalate",
            ],
            software=SOFTWARE,
            detail=f"{socket.gethostname()[:64]}; source {self._source_status}"[:1024],
            config_version=self.config.version,
            tags=list(self.settings.tags),
        )
        return Outgoing(self._topic(Kind.STATE), encode(state), qos=STATE.qos, retain=STATE.retain)

    # -- main ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> AgentStats:
        """Start every part, classify until ``stop`` or the source ends, then stop them."""
        self._start()
        loop_started = time.perf_counter()
        try:
            self._loop(stop)
        finally:
            self.emitter.close()  # every classified frame reaches the outbox before shutdown
            self.loop_seconds = time.perf_counter() - loop_started
            self._stop()
        return self.stats

    def _start(self) -> None:
        s = self.settings
        self.feed.start()
        self.rollout.start()
        self.link.start()
        self.sender.start()
        self.emitter.start()
        self.notifier.ready(f"{s.site}/{s.device} running {self.runtime.card.name}")
        logger.info(
            "agent %s/%s: model %s %s, %d queued from before",
            s.site,
            s.device,
            self.runtime.card.name,
            self.runtime.sha256[:12],
            sum(self.outbox.depth().values()),
        )

    def _stop(self) -> None:
        """Report, drain the outbox while the link is up, then close the disk and the source."""
        self.notifier.stopping()
        self._count_frames()
        self.stats.skipped = self.source.skipped
        self.stats.over_budget = self.results.policy.over_budget
        self.stats.cooled_down = self.results.policy.cooled_down
        self.rollout.stop()
        self._publish_telemetry()
        self._drain()
        self.sender.stop()
        self.link.stop(farewell=self._state("offline"))
        self.stats.outbox_depth = sum(self.outbox.depth().values())
        self.stats.dropped = sum(
            v for k, v in self.outbox.counters().items() if k.startswith(("dropped.", "expired."))
        )
        self.outbox.close()
        self.feed.close()
        self.stats.capture_drops = self.feed.dropped if self.live else 0
        self.stats.verdicts = self.verdicts.counts["verdicts.received"]
        self.stats.corrected = self.verdicts.counts["verdicts.corrected"]
        self._write_stats()

    def _switch(self, runtime: EdgeModel) -> None:
        """A new model was verified (the rollout's thread): the loop switches between frames."""
        self._next_runtime = runtime

    def _on_model(self, topic_: Topic, decoded: Decoded) -> None:
        message = decoded.message
        if isinstance(message, ModelOfferMessage):
            self.rollout.offer(message)
        elif isinstance(message, ModelChunkHeader):
            self.rollout.chunk(message, decoded.body)

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

    def _on_ack(self, topic_: Topic, decoded: Decoded) -> None:
        """The gateway has committed these results and escalations: the outbox forgets them."""
        if isinstance(decoded.message, AckMessage):
            self.outbox.confirm(decoded.message.msg_ids)

    def _on_command(self, topic_: Topic, decoded: Decoded) -> None:
        if isinstance(decoded.message, CommandMessage) and topic_.sub is not None:
            self.commands.handle(topic_.sub, decoded.message)

    def _config_applied(self) -> None:
        """A remote config is in force (paho's thread): the gate is swapped here, the policy and
        zones by the emit thread, the pace and telemetry interval by the loop; the retained state
        says the version now running."""
        gating = self.settings.gating
        self.feed.set_gate(SceneGate(gating.threshold) if gating.enabled else None)
        if self.link.connected:
            self.link.publish(self._state("online"))

    def _on_verdict(self, topic_: Topic, decoded: Decoded) -> None:
        if isinstance(decoded.message, VerdictMessage) and not self.verdicts.apply(decoded.message):
            logger.info("verdict for unknown result %s", decoded.message.result_id)
        elif isinstance(decoded.message, VerdictMessage):
            self.results.verdict_applied(decoded.message)  # a detector's: the cloud's count

    def _on_gateway_state(self, topic_: Topic, decoded: Decoded) -> None:
        if not isinstance(decoded.message, StateMessage):
            return
        online = decoded.message.status == "online"
        if online != self.gateway_online.is_set():
            logger.info("site gateway is %s", decoded.message.status)
        (self.gateway_online.set if online else self.gateway_online.clear)()

    def _loop(self, stop: threading.Event) -> None:
        """Stage 2 of the pipeline (see :mod:`edge_agent.feed`): invoke, then hand on."""
        feed = self.feed
        next_due = time.monotonic()
        next_telemetry = time.monotonic() + self.settings.telemetry_interval_s
        while not stop.is_set():
            s = self.settings  # once per frame: a remote config takes effect at the next one
            self.notifier.watchdog()
            if self._next_runtime is not None:  # a new model was verified: switch between frames
                self.runtime, self._next_runtime = self._next_runtime, None
                feed.runtime = self.runtime
                self._model_ref = model_ref(self.runtime)
                self.link.publish(self._state("online"))
            self._count_frames()
            if s.source.max_frames is not None and self.stats.frames >= s.source.max_frames:
                break
            item = feed.get(timeout=0.5)
            self._report_source()
            if item is None:
                if not feed.exhausted:
                    continue  # a live source with nothing new yet (or reconnecting)
                logger.info("source exhausted after %d frames", self.stats.frames)
                break
            self._inferred += 1
            runtime = self.runtime
            tensor, preprocess_ms = item.tensor, item.preprocess_ms
            if item.runtime is not runtime:  # prepared for the model we just switched from
                t0 = time.perf_counter()
                tensor = runtime.preprocess(item.frame.image)
                preprocess_ms = (time.perf_counter() - t0) * 1000
            height, width = item.frame.image.shape[:2]
            result = invoke_tensor(runtime, tensor, height, width, preprocess_ms)
            self.emitter.put((item, result, self._model_ref, runtime.labels))
            # A shorter interval from a remote config applies now, not after the old one.
            next_telemetry = min(next_telemetry, time.monotonic() + s.telemetry_interval_s)
            if time.monotonic() >= next_telemetry:
                self._count_frames()
                self._publish_telemetry()
                next_telemetry += s.telemetry_interval_s
            next_due += 1.0 / s.source.fps
            delay = next_due - time.monotonic()
            if delay > 0.002:  # shorter waits cost more than they save (thread switches)
                stop.wait(delay)
            elif delay < 0:
                next_due = time.monotonic()  # behind: do not try to catch up in a burst

    def _count_frames(self) -> None:
        """``frames`` counts every frame taken from the source: inferred or gated."""
        self.stats.gated = self.feed.gated
        self.stats.frames = self._inferred + self.feed.gated

    def _report_source(self) -> None:
        """Re-publish the retained state when the source's status changes."""
        status = self.source.status
        if status != self._source_status:
            self._source_status = status
            if self.link.connected:
                self.link.publish(self._state("online"))

    def _publish_telemetry(self) -> None:
        outbox = self.outbox
        proc = psutil.Process()
        counters = outbox.counters()
        counters.update(
            frames_skipped=self.source.skipped,
            escalations=self.stats.escalations,
            audits=self.stats.audits,
            gated=self.stats.gated,
        )
        counters["drops.capture"] = self.feed.dropped
        counters.update(self.verdicts.counts)
        counters.update(self.results.counters())
        message = TelemetryMessage(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            memory_rss_mb=proc.memory_info().rss / 1e6,
            temperature_c=read_temperature(),
            fps=self._fps(),
            frames=self.stats.frames,
            latency_ms=self.timer.percentiles(),
            queues={f"outbox.{k}": v for k, v in outbox.depth().items()}
            | {"outbox_bytes": outbox.size_bytes, "outbox_quota_bytes": outbox.quota_bytes},
            counters=counters,
            model=self._model_ref,
            accelerator=self.runtime.accelerator,
            disk_percent=disk_percent(self.settings.data_dir),
            uptime_s=uptime_s(),
            agent_uptime_s=time.monotonic() - self._started_at,
            inferences=self._inferred,
            latency_mean_ms=self.timer.mean("invoke"),
        )
        wire = Outgoing(self._topic(Kind.TELEMETRY), encode(message), qos=TELEMETRY.qos)
        outbox.put(TELEMETRY.queue_class, wire, message.msg_id)
        self.monitor.append(message)

    def _fps(self) -> float:
        """Frames per second since the previous telemetry message."""
        now = time.monotonic()
        last_at, last_frames = self._fps_mark
        self._fps_mark = (now, self.stats.frames)
        elapsed = now - last_at
        return (self.stats.frames - last_frames) / elapsed if elapsed > 0 else 0.0

    def _drain(self) -> None:
        """Until everything queued is sent and confirmed by the gateway, or the timeout; what
        is left stays on disk and goes at the next start."""
        outbox = self.outbox
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while sum(outbox.depth().values()) + outbox.awaiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        left, unconfirmed = sum(outbox.depth().values()), outbox.awaiting()
        if left or unconfirmed:
            logger.warning(
                "stopping with %d message(s) still queued and %d not confirmed yet, on disk",
                left,
                unconfirmed,
            )

    def _write_stats(self) -> None:
        path = self.settings.data_dir / "stats.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.stats)))
        os.replace(tmp, path)
        logger.info("agent stopped: %s", asdict(self.stats))
