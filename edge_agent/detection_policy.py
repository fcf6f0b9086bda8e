"""The escalation rules of a detection model: which of its frames the cloud should look at.

A detector has no class distribution to measure; what makes its frame unsure
(``escalation.detection``, :class:`~edgecascade.edge_agent.settings.DetectionEscalationSettings`):

- ``score_band``: a detection's score lies in ``[score_low, score_high)``: found, but barely;
- ``count``: the count of a label (``count_by: label``) or of all (``total``) differs from the
  most frequent count of the previous ``count_window`` frames (earliest on ties): someone came or
  went, or the model flickers; either way the cloud's count settles it;
- ``empty``: nothing found on a frame the scene gate (:mod:`edge_agent.gating`) passed as changed
  against the previous one: something moved and the model saw nothing;
- ``fewer_than_cloud``: on a frame the scene gate passed as changed, the edge found fewer boxes
  (of any label) than the cloud counted on this camera's last judged frame (the newest detection
  verdict's boxes): the cloud has shown that the scene holds what the edge
  cannot see (a far face under the edge model's input resolution), so while the scene changes
  the cloud keeps looking, until a verdict says the count came down to the edge's.

``escalation.mode: always`` escalates every frame (cloud-only reference) as for a classifier.
An unsure frame then goes through the same cooldown, token bucket and audit sampling
(:class:`~edgecascade.edge_agent.policy.EscalationPolicy`); the reason names the rule and its
figures. The rules see the detections the zones kept (:mod:`edge_agent.zones`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgecascade.edge_agent.policy import Decision, EscalationPolicy
from edgecascade.shared.fields import DetectedObject

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

TOTAL = "*"  # the key of the total count when count_by is "total"


def _mode(values: Sequence[int]) -> int:
    """The most frequent value, the earliest of those on ties."""
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)


class DetectionPolicy:
    """Unsure detection frames, then the shared policy's cooldown and budget (emit thread)."""

    def __init__(self, policy: EscalationPolicy) -> None:
        self.policy = policy
        self.settings = policy.settings.detection
        self._history: deque[Counter[str]] = deque(maxlen=self.settings.count_window)
        # Boxes the cloud counted on the newest judged frame (None before the first verdict);
        # set from the verdict's thread, one int assignment (read once per frame).
        self.cloud_count: int | None = None

    def cloud_counted(self, count: int) -> None:
        """A detection verdict came: the cloud found ``count`` boxes on the frame it judged."""
        self.cloud_count = count

    def unsure(self, detections: Sequence[DetectedObject], changed: bool) -> str | None:
        """The rule that fires (with its figures), or None; every frame enters the count
        history, unsure or not."""
        counts = self._counts(detections)
        try:
            return self._unsure(detections, counts, changed)
        finally:
            self._history.append(counts)

    def _counts(self, detections: Sequence[DetectedObject]) -> Counter[str]:
        if self.settings.count_by == "total":
            return Counter({TOTAL: len(detections)})
        return Counter(d.label for d in detections)

    def _unsure(
        self, detections: Sequence[DetectedObject], counts: Counter[str], changed: bool
    ) -> str | None:
        s = self.settings
        if self.policy.settings.mode == "always":
            return "always"
        if "score_band" in s.rules:
            for d in detections:
                if s.score_low <= d.score < s.score_high:
                    return (
                        f"score_band {d.label} {d.score:.3f} in "
                        f"[{s.score_low:.3f}, {s.score_high:.3f})"
                    )
        if "count" in s.rules and self._history:
            labels = sorted(set(counts).union(*self._history))
            for label in labels:
                usual = _mode([previous[label] for previous in self._history])
                if counts[label] != usual:
                    return (
                        f"count {label} {counts[label]} != {usual} "
                        f"(mode of the last {len(self._history)})"
                    )
        if "empty" in s.rules and changed and not detections:
            return "empty: nothing found on a changed scene"
        cloud = self.cloud_count
        if "fewer_than_cloud" in s.rules and changed and len(detections) < (cloud or 0):
            return f"fewer_than_cloud {len(detections)} < {cloud} on a changed scene"
        return None

    def decide(
        self,
        detections: Sequence[DetectedObject],
        changed: bool,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> Decision:
        return self.policy.admit(self.unsure(detections, changed), image)
