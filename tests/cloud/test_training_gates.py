"""The ship gates: each one refuses on its own, with the figures in the reason."""

from __future__ import annotations

from edgecascade.cloud.training_gates import decide_ship
from edgecascade.shared.runtime.card import LineageMetrics


def m(holdout: float | None, original: float) -> LineageMetrics:
    return LineageMetrics(holdout_accuracy=holdout, original_accuracy=original)


def test_ships_when_every_gate_passes() -> None:
    decision = decide_ship(m(0.70, 0.90), m(0.85, 0.897), 0.5, 100, holdout_samples=400)
    assert decision.ship
    assert "0.7000 -> 0.8500" in decision.reason and "+15.00 points" in decision.reason


def test_too_small_holdout() -> None:
    decision = decide_ship(m(0.70, 0.90), m(0.95, 0.90), 0.5, 100, holdout_samples=99)
    assert not decision.ship
    assert decision.reason.startswith("holdout gate: 99 held-out samples, at least 100")


def test_missing_holdout_figures_never_ship() -> None:
    decision = decide_ship(m(None, 0.90), m(None, 0.95), 0.5, 0, holdout_samples=0)
    assert not decision.ship and decision.reason.startswith("holdout gate")


def test_no_improvement_is_not_enough() -> None:
    equal = decide_ship(m(0.80, 0.90), m(0.80, 0.91), 0.5, 10, holdout_samples=200)
    assert not equal.ship
    assert equal.reason.startswith("improvement gate: holdout accuracy 0.8000 -> 0.8000")
    margin = decide_ship(
        m(0.80, 0.90), m(0.81, 0.90), 0.5, 10, holdout_samples=200, min_improvement_points=2.0
    )
    assert not margin.ship and "more than +2.00 needed" in margin.reason
    assert decide_ship(
        m(0.80, 0.90), m(0.83, 0.90), 0.5, 10, holdout_samples=200, min_improvement_points=2.0
    ).ship


def test_regression_on_the_original_set() -> None:
    decision = decide_ship(m(0.60, 0.90), m(0.90, 0.894), 0.5, 10, holdout_samples=200)
    assert not decision.ship
    assert decision.reason.startswith("regression gate: original accuracy 0.9000 -> 0.8940")
    assert "-0.60 points" in decision.reason and "at most 0.50" in decision.reason
    assert decide_ship(m(0.60, 0.90), m(0.90, 0.895), 0.5, 10, holdout_samples=200).ship
