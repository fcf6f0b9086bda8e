"""Recent results kept on the device so a later cloud verdict can be applied to them.

A bounded in-memory map from result id to the edge's top-1, newest ``capacity`` results (the
results themselves are durable in the outbox until sent; a verdict for a result the device no
longer remembers is counted, not fatal). A verdict records the cloud's label and whether it
agrees with the edge.

Detection results are remembered by their task and box count; a detection verdict records the
cloud's agreement (:class:`~edgecascade.shared.messages.DetectionAgreement`: matched boxes,
edge-only and cloud-only ones), counts ``verdicts.disagreed`` when the boxes did not all match
both ways and adds the unmatched boxes to ``verdicts.edge_only`` / ``verdicts.cloud_only``. A
verdict whose task is not its result's (a cloud that ran the wrong kind of model) is counted in
``verdicts.mismatched`` and otherwise ignored. A verdict delivered again for the same escalation
(after a reconnect, or resubmitted by the cloud) is applied and counted once, then only counted in
``verdicts.duplicate``.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

from edgecascade.shared.fields import DetectionAgreement
from edgecascade.shared.messages import ResultMessage, VerdictMessage


@dataclass
class Remembered:
    frame_id: str
    edge_label: str
    edge_score: float
    cloud_label: str | None = None
    agrees: bool | None = None
    task: str = "classification"
    agreement: DetectionAgreement | None = None  # detection verdicts
    judged_by: str | None = None  # the escalation whose verdict was applied


class VerdictBook:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self.counts: Counter[str] = Counter()
        self._results: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, result: ResultMessage) -> None:
        """Keep the edge's answer: its top-1, or for a detection its best label (if any)."""
        top = result.top[0] if result.top else None
        entry = Remembered(
            result.frame_id,
            top.label if top else "",
            top.score if top else 0.0,
            task=result.task,
        )
        with self._lock:
            self._results[result.msg_id] = entry
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)

    def apply(self, verdict: VerdictMessage) -> bool:
        """Record the cloud's answer on the remembered result; False if it is unknown or of
        the other task."""
        with self._lock:
            entry = self._results.get(verdict.result_id)
            if entry is None:
                self.counts["verdicts.unknown"] += 1
                return False
            if entry.task != verdict.task:
                self.counts["verdicts.mismatched"] += 1
                return False
            if entry.judged_by == verdict.escalation_id:
                # Delivered again (a reconnect, a resubmitted escalation): applied once.
                self.counts["verdicts.duplicate"] += 1
                return True
            entry.judged_by = verdict.escalation_id
            if verdict.task == "detection":
                entry.cloud_label = verdict.top[0].label if verdict.top else None
                entry.agrees, entry.agreement = verdict.agrees, verdict.agreement
            else:
                entry.cloud_label = verdict.top[0].label
                entry.agrees = entry.edge_label == entry.cloud_label
        self.counts["verdicts.received"] += 1
        if verdict.task == "detection":
            self._count_agreement(verdict)
        elif not entry.agrees:
            self.counts["verdicts.corrected"] += 1
        return True

    def _count_agreement(self, verdict: VerdictMessage) -> None:
        if not verdict.agrees:
            self.counts["verdicts.disagreed"] += 1
        if verdict.agreement is not None:
            self.counts["verdicts.edge_only"] += verdict.agreement.edge_only
            self.counts["verdicts.cloud_only"] += verdict.agreement.cloud_only

    def agreement(self, result_id: str) -> DetectionAgreement | None:
        """The cloud's agreement with a remembered detection result, once its verdict came."""
        with self._lock:
            entry = self._results.get(result_id)
        return None if entry is None else entry.agreement

    def cloud_label(self, result_id: str) -> str | None:
        with self._lock:
            entry = self._results.get(result_id)
        return None if entry is None else entry.cloud_label
