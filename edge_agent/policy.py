"""The escalation policy: which frames the cloud should look at.

A frame is *unsure* when a rule fires on the small model's (temperature-calibrated) probabilities:

- ``max_prob``: top-1 probability below ``threshold`` (or below the per-class threshold of the
  predicted class in ``class_thresholds``);
- ``margin``: top-1 minus top-2 probability below ``margin``;
- ``entropy``: normalised entropy (0 = certain, 1 = uniform) above ``entropy``.

``mode`` picks one rule, ``any`` for all three, or ``always``: every frame is unsure, which turns a
device into a cloud-only camera (the reference ``edgecascade bench cascade`` measures against).
An unsure frame is escalated unless the cooldown finds a near-duplicate (64-bit dHash within
``cooldown_distance`` bits) escalated in the last ``cooldown_s`` seconds, or the device's token
bucket (``budget_per_minute``, ``burst``) is empty.
Every refusal is counted.

Audit sample: of the frames the model is *sure* of, a seeded-random ``audit_fraction`` is
uploaded anyway (:meth:`EscalationPolicy.audit`), from the same token bucket, so the cloud judges
a random sample and not only the frames the policy picked: escalated frames alone say how often
the edge is wrong when it is unsure, which is no estimate of its accuracy.

Temperature: the runtime's softmax already divides by the model card's temperature, so the rules
see calibrated probabilities and apply no temperature of their own.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgecascade.edge_agent.settings import EscalationSettings
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.ids import Clock
from edgecascade.shared.runtime.scores import normalized_entropy, top2_margin

if TYPE_CHECKING:
    import numpy.typing as npt


CONFIDENT = "confident"  # the reason of a frame the model is sure of
AUDIT = "audit"  # the reason an audit sample's header gives


@dataclass(frozen=True, slots=True)
class Decision:
    escalate: bool
    reason: str


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; ``take()`` spends one if there is one."""

    rate: float
    capacity: float
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self._last = self.clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def dhash(image: npt.NDArray[np.uint8], bits: int = 8) -> int:
    """64-bit difference hash: is each pixel brighter than its right neighbour, on a 9x8 gray.

    A camera-sized frame is cut to whole cells first (at most 8 columns and 7 rows less), so
    OpenCV shrinks it by a block average: a sixth of the cost of the fractional-area path on a
    640x360 frame (0.09 against 0.57 ms here), which the emit thread paid for every unsure frame.
    """
    import cv2

    cell_h, cell_w = image.shape[0] // bits, image.shape[1] // (bits + 1)
    if min(cell_h, cell_w) >= 8:  # small frames keep every pixel: the cut would matter there
        image = image[: cell_h * bits, : cell_w * (bits + 1)]
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (bits + 1, bits), interpolation=cv2.INTER_AREA).astype(np.int16)
    diff = (small[:, 1:] > small[:, :-1]).ravel()
    return int.from_bytes(np.packbits(diff).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class EscalationPolicy:
    def __init__(
        self,
        settings: EscalationSettings,
        labels: tuple[str, ...] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        unknown = sorted(set(settings.class_thresholds) - set(labels)) if labels else []
        if unknown:
            raise ConfigError(
                f"escalation.class_thresholds names {unknown}, which are not labels of the model"
            )
        self.settings = settings
        self.clock = clock
        self.bucket = TokenBucket(settings.budget_per_minute / 60.0, float(settings.burst), clock)
        self._recent: deque[tuple[float, int]] = deque(maxlen=256)
        self._audit_draw = random.Random(settings.audit_seed)
        self.over_budget = 0
        self.cooled_down = 0
        self.audits = 0

    def unsure(self, probabilities: npt.NDArray[np.float32], label: str) -> str | None:
        """The rule that fires (with its figures), or None when the model is sure."""
        s = self.settings
        if s.mode == "always":
            return "always"
        top1 = float(probabilities.max())
        if s.mode in ("max_prob", "any"):
            threshold = s.class_thresholds.get(label, s.threshold)
            if top1 < threshold:
                return f"max_prob {top1:.3f} < {threshold:.3f}"
        if s.mode in ("margin", "any"):
            margin = top2_margin(probabilities)
            if margin < s.margin:
                return f"margin {margin:.3f} < {s.margin:.3f}"
        if s.mode in ("entropy", "any"):
            entropy = normalized_entropy(probabilities)
            if entropy > s.entropy:
                return f"entropy {entropy:.3f} > {s.entropy:.3f}"
        return None

    def decide(
        self,
        probabilities: npt.NDArray[np.float32],
        label: str,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> Decision:
        return self.admit(self.unsure(probabilities, label), image)

    def admit(self, reason: str | None, image: npt.NDArray[np.uint8] | None = None) -> Decision:
        """Whether an unsure frame (``reason``: the rule that fired; None: sure) goes up: the
        cooldown and the token bucket, shared by the classification and detection rules."""
        if reason is None:
            return Decision(False, CONFIDENT)
        fingerprint = None
        if image is not None and self.settings.cooldown_s > 0:
            fingerprint = dhash(image)
            now = self.clock()
            for seen_at, seen in self._recent:
                near = hamming(seen, fingerprint) <= self.settings.cooldown_distance
                if now - seen_at <= self.settings.cooldown_s and near:
                    self.cooled_down += 1
                    return Decision(False, "cooldown: near-duplicate of a recent escalation")
        if not self.bucket.take():
            self.over_budget += 1
            return Decision(False, "over budget")
        if fingerprint is not None:
            self._recent.append((self.clock(), fingerprint))
        return Decision(True, reason)

    def audit(self, decision: Decision) -> bool:
        """Whether a frame the policy did not escalate goes up as an audit sample: only a sure
        one (not one cooled down or over budget), drawn at ``audit_fraction``, while the token
        bucket has a token (an audit spends it like an escalation)."""
        if decision.escalate or decision.reason != CONFIDENT:
            return False
        if self._audit_draw.random() >= self.settings.audit_fraction:
            return False
        if not self.bucket.take():
            return False
        self.audits += 1
        return True
