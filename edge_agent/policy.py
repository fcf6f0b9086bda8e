"""The escalation policy: which frames the cloud should look at.

A frame is escalated when the small model's top-1 probability is below ``threshold`` and the
device's token bucket (``budget_per_minute``, ``burst``) has a token left, so a confused model
cannot flood the uplink. Frames refused by the budget are counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edge_agent.settings import EscalationSettings
from shared.ids import Clock


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


class EscalationPolicy:
    def __init__(self, settings: EscalationSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.bucket = TokenBucket(settings.budget_per_minute / 60.0, float(settings.burst), clock)
        self.over_budget = 0

    def decide(self, top1: float) -> Decision:
        if top1 >= self.settings.threshold:
            return Decision(False, "confident")
        if not self.bucket.take():
            self.over_budget += 1
            return Decision(False, "over budget")
        return Decision(True, f"top-1 {top1:.3f} < threshold {self.settings.threshold:.3f}")
