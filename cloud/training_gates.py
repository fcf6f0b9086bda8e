"""Whether a fine-tuned edge model may ship: a pure decision the trainer and the cloud share.

A child ships only when all three gates pass, checked in this order so the reason names the first
that failed:

1. the held-out slice of the site's verdicts has at least ``min_holdout`` samples (fewer cannot
   tell a better model from noise);
2. the child beats its parent on that slice by more than ``min_improvement_points`` (strictly);
3. the child loses at most ``max_regression_points`` on the original evaluation set, so it has
   not forgotten the distribution it was first trained on.

No torch, no I/O: the cloud calls it on the figures a training run reports. The run's report
(``report.json`` of ``edgecascade cloud train``) is typed here too, so the cloud reads it without
the train extra.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edgecascade.shared.runtime.card import LineageMetrics


class TrainingResult(BaseModel):
    """Figures of one fine-tuning run: what the card's lineage and the report carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before: LineageMetrics = Field(description="The parent, through LiteRT.")
    after: LineageMetrics = Field(description="The child (int8), through LiteRT.")
    train_samples: int = Field(ge=0, description="Dataset samples trained on.")
    holdout_samples: int = Field(ge=0, description="Dataset samples evaluated on.")
    replay_samples_seen: int = Field(ge=0, description="Original training frames replayed.")
    original_eval_dataset: str = Field(description="What original_accuracy was measured on.")
    epochs: int = Field(ge=1, description="Passes over the train samples.")
    seconds: float = Field(ge=0.0, description="Wall time of training and evaluation.")


class ShipDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ship: bool = Field(description="Whether the child may be rolled out.")
    reason: str = Field(description="Why, with the figures; names the failing gate.")


def decide_ship(
    before: LineageMetrics,
    after: LineageMetrics,
    max_regression_points: float,
    min_holdout: int,
    *,
    holdout_samples: int,
    min_improvement_points: float = 0.0,
) -> ShipDecision:
    """Apply the gates to the parent's (``before``) and the child's (``after``) figures.

    Accuracies are fractions; the thresholds are percentage points.
    """
    if (
        holdout_samples < min_holdout
        or before.holdout_accuracy is None
        or after.holdout_accuracy is None
    ):
        return ShipDecision(
            ship=False,
            reason=f"holdout gate: {holdout_samples} held-out samples, at least "
            f"{max(min_holdout, 1)} needed",
        )
    gain = round(100.0 * (after.holdout_accuracy - before.holdout_accuracy), 9)
    holdout_figures = (
        f"holdout accuracy {before.holdout_accuracy:.4f} -> {after.holdout_accuracy:.4f} "
        f"({gain:+.2f} points on {holdout_samples} samples)"
    )
    if not gain > min_improvement_points:
        return ShipDecision(
            ship=False,
            reason=f"improvement gate: {holdout_figures}, more than "
            f"{min_improvement_points:+.2f} needed",
        )
    change = round(100.0 * (after.original_accuracy - before.original_accuracy), 9)
    original_figures = (
        f"original accuracy {before.original_accuracy:.4f} -> {after.original_accuracy:.4f} "
        f"({change:+.2f} points)"
    )
    if -change > max_regression_points:
        return ShipDecision(
            ship=False,
            reason=f"regression gate: {original_figures}, at most {max_regression_points:.2f} "
            "points lost allowed",
        )
    return ShipDecision(
        ship=True, reason=f"all gates passed: {holdout_figures}; {original_figures}"
    )


class TrainReport(BaseModel):
    """``report.json`` of ``edgecascade cloud train``: the run's figures and the gates' decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="The child as name@version.")
    parent: str = Field(description="The parent as name@version.")
    dataset_snapshot_id: str = Field(description="The dataset trained on.")
    result: TrainingResult
    decision: ShipDecision
    files: list[str] = Field(description="What the run wrote into its output folder.")
