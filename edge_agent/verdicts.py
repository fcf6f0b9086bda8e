"""Recent results kept on the device so a later cloud verdict can be applied to them.

A bounded in-memory map from result id to the edge's top-1, newest ``capacity`` results (the
results themselves are durable in the outbox until sent; a verdict for a result the device no
longer remembers is counted, not fatal). A verdict records the cloud's label and whether it
agrees with the edge.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

from edgecascade.shared.messages import ResultMessage, VerdictMessage


@dataclass
class Remembered:
    frame_id: str
    edge_label: str
    edge_score: float
    cloud_label: str | None = None
    agrees: bool | None = None


class VerdictBook:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self.counts: Counter[str] = Counter()
        self._results: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, result: ResultMessage) -> None:
        top = result.top[0]
        with self._lock:
            self._results[result.msg_id] = Remembered(result.frame_id, top.label, top.score)
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)

    def apply(self, verdict: VerdictMessage) -> bool:
        """Record the cloud's answer on the remembered result; False if it is unknown."""
        label = verdict.top[0].label
        with self._lock:
            entry = self._results.get(verdict.result_id)
            if entry is None:
                self.counts["verdicts.unknown"] += 1
                return False
            entry.cloud_label = label
            entry.agrees = entry.edge_label == label
        self.counts["verdicts.received"] += 1
        if not entry.agrees:
            self.counts["verdicts.corrected"] += 1
        return True

    def cloud_label(self, result_id: str) -> str | None:
        with self._lock:
            entry = self._results.get(result_id)
        return None if entry is None else entry.cloud_label
