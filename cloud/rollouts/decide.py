"""What a rollout does next, decided without a database, a broker or a clock.

:func:`decide` takes a rollout as it stands (:class:`RolloutView`), what was observed of it
(:class:`Evaluation`: the devices' acks and the quality comparison) and the time, and returns one
:class:`Decision`; the controller (``controller.py``) reads, calls it, and writes and publishes
what it says. The gates, in order: too many devices failed to apply the model, the cloud disagrees
with the new model's escalations more, it escalates more, it is slower -> roll back; otherwise
wait for the devices, the verdicts and the stage's minimum time; then widen, or complete after the
last stage. A rolling back rollout is finished by :func:`rollback_settled`.

The values here are the vocabulary of the whole package: the states (:class:`RolloutState`,
stored by value in ``rollouts.state``), a stage's devices (:func:`stage_devices`) and the id the
rollback is offered under (:func:`rollback_id`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from pydantic import JsonValue

from edgecascade.cloud.settings import RolloutCriteria

APPLIED = frozenset({"applied", "committed"})  # ack statuses of a device that runs the offer
FAILED = "failed"


class RolloutState(StrEnum):
    """Where a rollout is; the values are what ``rollouts.state`` stores."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


WATCHED = (RolloutState.RUNNING, RolloutState.ROLLING_BACK)  # what the controller's loop visits


def rollback_id(rollout_id: str) -> str:
    """The rollout id the rollback of ``rollout_id`` is offered (and acked) under."""
    return f"{rollout_id}-rb"


def stage_devices(targets: list[str], percent: float) -> list[str]:
    """The devices a stage covers: the first ``percent`` of the targets, at least one."""
    return targets[: max(1, math.ceil(percent / 100 * len(targets)))]


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout as the decision needs it (a snapshot of its row)."""

    id: str
    state: RolloutState
    targets: list[str]
    stages: list[float]
    stage: int
    stage_started_at: float
    offered: list[str]
    criteria: RolloutCriteria


@dataclass(frozen=True, slots=True)
class Acks:
    """The newest ack status per device: of the rollout's offer, and of its rollback's."""

    model: Mapping[str, str] = field(default_factory=dict)
    rollback: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Figures:
    """One model's quality on the site, from what the fleet reported."""

    model: str  # "<name> <version>"
    verdicts: int
    disagreement: float | None  # share of its escalations the cloud disagrees with
    results: int
    escalation_rate: float | None
    invoke_ms_p50: float | None
    # Detection models: the mean precision and recall of the edge's boxes against the cloud's
    # over its detection verdicts (None without any); such a verdict disagrees unless both are 1.
    edge_precision: float | None = None
    edge_recall: float | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The new model against the baseline, as measured at ``at`` (stored as the evaluation)."""

    at: float
    new: Figures
    baseline: Figures

    def to_json(self) -> dict[str, JsonValue]:
        return {"at": self.at, "new": asdict(self.new), "baseline": asdict(self.baseline)}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything observed of a running rollout: its devices' acks and the comparison."""

    acks: Acks
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class Leave:
    """Nothing to do: the rollout is paused, finished, or rolling back."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Not yet: ``reason`` says what for (shown with the rollout)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Widen:
    """Go to ``stage``, offering the model to the devices in ``offered`` not offered before."""

    stage: int
    offered: list[str]


@dataclass(frozen=True, slots=True)
class Complete:
    """The last stage has run its course: the rollout is done."""


@dataclass(frozen=True, slots=True)
class RollBack:
    """Offer the baseline again to every device offered the model; ``reason`` has the figures."""

    reason: str


Decision = Leave | Wait | Widen | Complete | RollBack


def decide(rollout: RolloutView, evaluation: Evaluation, now: float) -> Decision:
    """The next step of ``rollout`` given what was observed of it at ``now``."""
    if rollout.state is not RolloutState.RUNNING:
        return Leave()
    failures = failed(rollout, evaluation.acks)
    if failures:
        return RollBack(failures)
    regression = regressed(evaluation.comparison, rollout.criteria)
    if regression:
        return RollBack(regression)
    waiting = waiting_for(rollout, evaluation, now)
    if waiting:
        return Wait("waiting for " + ", ".join(waiting))
    stage = rollout.stage + 1
    if stage >= len(rollout.stages):
        return Complete()
    fresh = stage_devices(rollout.targets, rollout.stages[stage])
    return Widen(stage, [*rollout.offered, *(d for d in fresh if d not in rollout.offered)])


def rollback_settled(rollout: RolloutView, acks: Acks) -> bool:
    """Every device offered the model runs the baseline again."""
    return all(acks.rollback.get(device) in APPLIED for device in rollout.offered)


def failed(rollout: RolloutView, acks: Acks) -> str:
    """Why the rollout fails on its devices' acks, or ``""``."""
    limit = rollout.criteria.max_failure_rate
    failures = [d for d in rollout.offered if acks.model.get(d) == FAILED]
    if not rollout.offered or len(failures) / len(rollout.offered) <= limit:
        return ""
    return (
        f"{len(failures)} of {len(rollout.offered)} devices failed to apply the model "
        f"(allowed {limit:.0%}): {', '.join(sorted(failures))}"
    )


def regressed(comparison: Comparison, c: RolloutCriteria) -> str:
    """Why the new model is worse than the baseline beyond ``c``, or ``""``: each gate judges
    only on enough samples of both."""
    new, base = comparison.new, comparison.baseline
    if min(new.verdicts, base.verdicts) >= c.min_verdicts:
        reason = _disagreement(new, base, c)
        if reason:
            return reason
    if min(new.results, base.results) >= c.min_results:
        return _escalation(new, base, c) or _latency(new, base, c)
    return ""


def _disagreement(new: Figures, base: Figures, c: RolloutCriteria) -> str:
    if new.disagreement is None or base.disagreement is None:
        return ""
    rise = new.disagreement - base.disagreement
    if rise <= c.max_disagreement_increase:
        return ""
    return (
        f"the cloud disagrees with {new.disagreement:.0%} of {new.model}'s escalations "
        f"({new.verdicts} verdicts) against {base.disagreement:.0%} of {base.model}'s "
        f"({base.verdicts}): +{rise:.0%}, allowed +{c.max_disagreement_increase:.0%}"
    )


def _escalation(new: Figures, base: Figures, c: RolloutCriteria) -> str:
    if new.escalation_rate is None or base.escalation_rate is None:
        return ""
    rise = new.escalation_rate - base.escalation_rate
    if rise <= c.max_escalation_increase:
        return ""
    return (
        f"{new.model} escalates {new.escalation_rate:.0%} of {new.results} results against "
        f"{base.escalation_rate:.0%} for {base.model}: +{rise:.0%}, allowed "
        f"+{c.max_escalation_increase:.0%}"
    )


def _latency(new: Figures, base: Figures, c: RolloutCriteria) -> str:
    if not new.invoke_ms_p50 or not base.invoke_ms_p50:
        return ""
    ratio = new.invoke_ms_p50 / base.invoke_ms_p50
    if ratio <= c.max_latency_ratio:
        return ""
    return (
        f"{new.model} takes {new.invoke_ms_p50:.2f} ms per invoke (median) against "
        f"{base.invoke_ms_p50:.2f} ms: x{ratio:.1f}, allowed x{c.max_latency_ratio:g}"
    )


def waiting_for(rollout: RolloutView, evaluation: Evaluation, now: float) -> list[str]:
    """What the stage still needs before it may widen: every device offered running the model,
    enough verdicts on both models (never widen on what was not compared), its minimum time."""
    c = rollout.criteria
    waiting = []
    applied = [d for d in rollout.offered if evaluation.acks.model.get(d) in APPLIED]
    if len(applied) < len(rollout.offered):
        waiting.append(f"{len(rollout.offered) - len(applied)} device(s) to apply the model")
    for side in (evaluation.comparison.new, evaluation.comparison.baseline):
        if side.verdicts < c.min_verdicts:
            waiting.append(f"{c.min_verdicts} verdicts on {side.model} ({side.verdicts} so far)")
    remaining = rollout.stage_started_at + c.stage_min_s - now
    if remaining > 0:
        waiting.append(f"{remaining:.0f} s of the stage")
    return waiting
