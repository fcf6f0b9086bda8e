"""Stage 3 of the frame pipeline: an answer becomes a result message, maybe an escalation.

Runs on the emit thread (:class:`~edgecascade.edge_agent.feed.Emitter`). A classification answers
with its top classes and the classification rules of :mod:`edge_agent.policy`; a detection with
its boxes in pixels of the original frame (:mod:`edge_agent.detections`), kept or dropped by the
camera's zones (:mod:`edge_agent.zones`), a per-label summary in ``top`` and the detection rules
(:mod:`edge_agent.detection_policy`). Either way the result is committed to the disk outbox, and
an unsure frame (or an audit sample) is escalated under the same budget and cooldown. The results
(and escalations) of the frames waiting together are committed in one transaction
(:meth:`ResultEmitter.emit_batch`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

from edgecascade.edge_agent.detection_policy import DetectionPolicy
from edgecascade.edge_agent.detections import original_size, to_objects
from edgecascade.edge_agent.escalation import escalation_payload
from edgecascade.edge_agent.feed import Prepared
from edgecascade.edge_agent.live import LiveSettings
from edgecascade.edge_agent.policy import AUDIT, Decision, EscalationPolicy
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.edge_agent.sources import Frame
from edgecascade.edge_agent.stats import AgentStats
from edgecascade.edge_agent.telemetry import StageTimer
from edgecascade.edge_agent.verdicts import VerdictBook
from edgecascade.edge_agent.zones import ZoneFilter
from edgecascade.shared.boxes import label_summary
from edgecascade.shared.codec import encode
from edgecascade.shared.contract import queue_class_of, spec_of
from edgecascade.shared.errors import DiskFullError
from edgecascade.shared.messages import ModelRef, Prediction, ResultMessage, VerdictMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.runtime.detect import DetectionResult
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detector import Invoked
from edgecascade.shared.runtime.runtime import Classification
from edgecascade.shared.topics import Kind

RESULT, ESCALATION = spec_of(Kind.RESULT), spec_of(Kind.ESCALATION)
Answer = Classification | DetectionResult
# What the loop hands to the emit thread: the frame, its answer (a detector's not decoded yet:
# Invoked), the model and its labels.
Emitted = tuple[Prepared, Answer | Invoked, ModelRef, Sequence[str]]
Row = tuple[str, Outgoing, str | None]  # an outbox row to commit: class, message, msg_id


def policy_fingerprint(settings: AgentSettings) -> str:
    """The id of the escalation policy in force when no remote configuration version names it:
    a digest of everything that decides which frames go up (escalation, gating, zones), so two
    results with the same id were judged by the same rules."""
    rules = [settings.escalation, settings.gating, *settings.zones]
    text = "|".join(part.model_dump_json() for part in rules) + f"|{settings.zone_anchor}"
    return "p-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class ResultEmitter:
    """Builds, commits and escalates the results of one agent (the emit thread only)."""

    def __init__(
        self,
        settings: AgentSettings | LiveSettings,
        outbox: Outbox,
        verdicts: VerdictBook,
        stats: AgentStats,
        timer: StageTimer,
        topic: Callable[[Kind], str],
        labels: Sequence[str],
    ) -> None:
        # A LiveSettings: a remote config is picked up between two frames (:meth:`emit`).
        self._live = settings if isinstance(settings, LiveSettings) else None
        settings = settings.current if isinstance(settings, LiveSettings) else settings
        self.settings = settings
        self.labels = tuple(labels)
        self.outbox, self.verdicts, self.stats, self.timer = outbox, verdicts, stats, timer
        self.topic = topic
        self.policy = EscalationPolicy(settings.escalation, tuple(labels))
        self.detection_policy = DetectionPolicy(self.policy)
        self.zones = ZoneFilter(settings.zones, settings.zone_anchor)
        self.detected = False  # a detection answer was emitted: telemetry has its counters
        self.faults = OutputFaults()  # what the detector dropped or clipped, all frames
        self.policy_id = self._policy_id(settings)  # every result says which rules judged it

    def _policy_id(self, settings: AgentSettings) -> str:
        """``config-<version>`` while a remote config is in force, else the fingerprint."""
        version = self._live.version if self._live is not None else None
        return f"config-{version}" if version is not None else policy_fingerprint(settings)

    def _reconfigure(self, settings: AgentSettings) -> None:
        """A new live config (the emit thread, between two frames): the policy, its detection
        rules and the zones are rebuilt from it; their counters carry on. The cooldown's memory,
        the token bucket and the count history start afresh with the new figures."""
        old, zones = self.policy, self.zones
        self.policy = EscalationPolicy(settings.escalation, self.labels)
        self.policy.over_budget, self.policy.cooled_down = old.over_budget, old.cooled_down
        self.policy.audits = old.audits
        cloud_count = self.detection_policy.cloud_count
        self.detection_policy = DetectionPolicy(self.policy)
        self.detection_policy.cloud_count = cloud_count  # what the cloud saw still holds
        self.zones = ZoneFilter(settings.zones, settings.zone_anchor)
        self.zones.excluded, self.zones.outside = zones.excluded, zones.outside
        self.settings = settings
        self.policy_id = self._policy_id(settings)

    def verdict_applied(self, verdict: VerdictMessage) -> None:
        """A verdict was applied (the link's thread). A detection verdict says how many boxes
        the cloud found on the frame it judged: the ``fewer_than_cloud`` rule holds the next
        changed frames against it."""
        if verdict.task == "detection":
            self.detection_policy.cloud_counted(len(verdict.detections))

    def emit(self, item: Emitted) -> None:
        """One item: :meth:`emit_batch` of one."""
        self.emit_batch([item])

    def emit_batch(self, items: Sequence[Emitted]) -> None:
        """Build every item's result (and escalation), then commit them all to the outbox in one
        transaction, in order: one disk sync for the batch. Each item's ``publish`` time is the
        batch's over its size (the building and the shared commit)."""
        t0 = time.perf_counter()
        rows: list[Row] = []
        messages = [self._build(item, rows) for item in items]
        self._commit(rows)
        for message in messages:
            self.verdicts.remember(message)
        self.stats.results += len(messages)
        share = (time.perf_counter() - t0) * 1000 / max(1, len(items))
        for _ in items:
            self.timer.add("publish", share)

    def _commit(self, rows: list[Row]) -> None:
        """One transaction for ``rows``; on a full disk each is put alone, as :meth:`Outbox.put`
        handles it (dropped and counted, or kept if a row fits after all)."""
        try:
            self.outbox.put_many(rows)
        except DiskFullError:
            for klass, wire, msg_id in rows:
                self.outbox.put(klass, wire, msg_id)

    def _build(self, item: Emitted, rows: list[Row]) -> ResultMessage:
        """One frame's result message and, if it goes up, its escalation (rows to commit)."""
        prepared, answer, model, labels = item
        if self._live is not None and self._live.current is not self.settings:
            self._reconfigure(self._live.current)
        if isinstance(answer, Invoked):  # a detector's outputs: their boxes decoded here
            answer = answer.finish()
        self.timer.add("capture", prepared.capture_ms)
        for stage, ms in answer.timings_ms.items():
            self.timer.add(stage, ms)
        if isinstance(answer, DetectionResult):
            message, decision = self._detection(prepared, answer, model, labels)
        else:
            message, decision = self._classification(prepared.frame, answer, model)
        wire = Outgoing(self.topic(Kind.RESULT), encode(message), qos=RESULT.qos)
        rows.append((RESULT.queue_class, wire, message.msg_id))
        if decision.escalate:
            rows.append(self._escalate(prepared.frame, message, decision.reason))
        elif self.policy.audit(decision):
            rows.append(self._escalate(prepared.frame, message, AUDIT, audit=True))
        return message

    def _classification(
        self, frame: Frame, result: Classification, model: ModelRef
    ) -> tuple[ResultMessage, Decision]:
        top = [Prediction(index=i, label=label, score=score) for i, label, score in result.top(3)]
        decision = self.policy.decide(result.probabilities, top[0].label, frame.image)
        message = ResultMessage(
            frame_id=frame.frame_id,
            captured_at=frame.captured_at,
            model=model,
            top=top,
            latency_ms=dict(result.timings_ms),
            escalated=decision.escalate,
            ground_truth=frame.ground_truth,
            accelerator=result.accelerator,
            policy=self.policy_id,
        )
        return message, decision

    def _detection(
        self, prepared: Prepared, result: DetectionResult, model: ModelRef, labels: Sequence[str]
    ) -> tuple[ResultMessage, Decision]:
        self.detected = True
        frame = prepared.frame
        size = original_size(frame)
        seen = (frame.image.shape[1], frame.image.shape[0])
        found, invalid = to_objects(result.detections, seen, size)
        before = self.zones.excluded + self.zones.outside
        kept = self.zones.apply(found, *size)
        self.stats.detections_invalid += invalid
        self.faults += result.faults
        self.stats.detections_excluded += self.zones.excluded + self.zones.outside - before
        self.stats.detections += len(kept)
        decision = self.detection_policy.decide(kept, prepared.changed, frame.image)
        message = ResultMessage(
            frame_id=frame.frame_id,
            captured_at=frame.captured_at,
            model=model,
            task="detection",
            top=label_summary(kept, labels),
            detections=kept,
            frame_size=size,
            latency_ms=dict(result.timings_ms),
            escalated=decision.escalate,
            ground_truth=frame.ground_truth,
            accelerator=result.accelerator,
            policy=self.policy_id,
        )
        return message, decision

    def _escalate(
        self, frame: Frame, result: ResultMessage, reason: str, audit: bool = False
    ) -> Row:
        """The escalation's outbox row (the full-resolution frame: see :mod:`.escalation`)."""
        settings = self.settings.escalation
        header, payload = escalation_payload(frame, result, reason, settings, audit=audit)
        wire = Outgoing(self.topic(Kind.ESCALATION), payload, qos=ESCALATION.qos)
        if audit:
            self.stats.audits += 1
        else:
            self.stats.escalations += 1
        return queue_class_of(ESCALATION, header), wire, header.msg_id

    def counters(self) -> dict[str, int]:
        """The detection counters for telemetry (none for a classifier's agent): boxes sent,
        dropped by the zones, refused by the contract, and what the detector's decoding
        dropped or clipped (:mod:`~edgecascade.shared.runtime.detect_faults`)."""
        if not self.detected:
            return {}
        return {
            "detections": self.stats.detections,
            "detections.excluded": self.zones.excluded,
            "detections.outside_zones": self.zones.outside,
            "detections.invalid": self.stats.detections_invalid,
            "detections.nan_scores": self.faults.nan_scores,
            "detections.degenerate": self.faults.degenerate,
            "detections.clipped": self.faults.clipped,
            "detections.outside_frame": self.faults.outside,
        }
