"""Temperature calibration of an edge model from what the fleet stored: the edge's top-k
probabilities on escalated frames and the cloud's verdict on the same frames.

The cloud model's top-1 stands in for the truth. For each pair the edge's probabilities are
tempered, ``q_i ∝ p_i^(1/T)`` (the same as dividing the logits by T), with the probability the
edge left to the classes outside its top-k spread evenly over them; the temperature that
minimises the negative log-likelihood of the cloud's labels is found by a search over
log-spaced candidates. ``T > 1`` means the edge model was over-confident. The fitted factor
multiplies the temperature the model already ran with (the stored probabilities include it).

Only escalated frames have verdicts, so the fit sees the frames the model was unsure of; that is
where the escalation threshold acts, which is what calibration is for here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Log-spaced, and 1.0 itself, so a calibrated model is left as it is.
CANDIDATES = np.unique(np.append(np.exp(np.linspace(math.log(0.2), math.log(10.0), 241)), 1.0))


@dataclass(frozen=True, slots=True)
class Pair:
    """The edge's top-k ``(index, probability)`` on one frame and the cloud's label index."""

    top: Sequence[tuple[int, float]]
    truth: int


@dataclass(frozen=True, slots=True)
class Fit:
    temperature: float
    samples: int
    nll_before: float
    nll_after: float


def nll(pairs: Sequence[Pair], num_classes: int, temperature: float) -> float:
    """Mean negative log-likelihood of the truths under the tempered edge probabilities."""
    return float(_Arrays(pairs, num_classes).nll(temperature))


class _Arrays:
    """The pairs as arrays: the fit evaluates hundreds of temperatures on thousands of pairs."""

    def __init__(self, pairs: Sequence[Pair], num_classes: int) -> None:
        k = max(len(pair.top) for pair in pairs)
        self.p = np.full((len(pairs), k), 1e-9)
        self.where = np.full(len(pairs), -1)  # the truth's column in the top-k, -1: outside
        for row, pair in enumerate(pairs):
            for col, (index, score) in enumerate(pair.top):
                self.p[row, col] = min(max(score, 1e-9), 1.0)
                if index == pair.truth:
                    self.where[row] = col
        self.rest_classes = num_classes - np.array([len(pair.top) for pair in pairs])
        rest = np.clip(1.0 - self.p.sum(axis=1), 1e-9, None)
        self.each_rest = np.where(self.rest_classes > 0, rest / np.maximum(self.rest_classes, 1), 0)

    def nll(self, temperature: float) -> float:
        tempered = self.p ** (1.0 / temperature)
        tempered_rest = np.where(self.rest_classes > 0, self.each_rest ** (1.0 / temperature), 0)
        z = tempered.sum(axis=1) + self.rest_classes * tempered_rest
        rows = np.arange(len(self.where))
        inside = tempered[rows, np.maximum(self.where, 0)]
        q = np.where(self.where >= 0, inside, tempered_rest) / z
        return float(-np.log(np.clip(q, 1e-12, None)).mean())


def fit_temperature(pairs: Sequence[Pair], num_classes: int) -> Fit:
    if not pairs:
        raise ValueError("no pairs to fit a temperature on")
    arrays = _Arrays(pairs, num_classes)
    scores = [arrays.nll(float(t)) for t in CANDIDATES]
    best = int(np.argmin(scores))
    return Fit(
        temperature=float(CANDIDATES[best]),
        samples=len(pairs),
        nll_before=arrays.nll(1.0),
        nll_after=scores[best],
    )
