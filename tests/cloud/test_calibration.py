"""The temperature fit recovers a known over- or under-confidence from top-k outputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.cloud.calibration import Pair, fit_temperature


def pairs_with(true_temperature: float, n: int = 3000, classes: int = 10, k: int = 3) -> list[Pair]:
    """Edge outputs at temperature 1 where the truth follows softmax(logits / true_temperature)."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        logits = rng.normal(0.0, 2.5, classes)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        q = np.exp(logits / true_temperature - (logits / true_temperature).max())
        q /= q.sum()
        truth = int(rng.choice(classes, p=q))
        order = np.argsort(-p)[:k]
        out.append(Pair(top=[(int(i), float(p[i])) for i in order], truth=truth))
    return out


@pytest.mark.parametrize("true_temperature", [0.6, 1.0, 2.0])
def test_the_fit_finds_the_temperature_the_truths_were_drawn_with(true_temperature: float) -> None:
    fit = fit_temperature(pairs_with(true_temperature), num_classes=10)
    assert fit.temperature == pytest.approx(true_temperature, rel=0.15)
    assert fit.nll_after <= fit.nll_before
    assert fit.samples == 3000


def test_no_pairs_is_an_error() -> None:
    with pytest.raises(ValueError, match="no pairs"):
        fit_temperature([], num_classes=10)
