"""The rollout decision alone: a rollout, what was observed of it and a time in, a decision out;
no database, no broker, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgecascade.cloud.rollouts.decide import (
    Acks,
    Comparison,
    Complete,
    Evaluation,
    Figures,
    Leave,
    RollBack,
    RolloutState,
    RolloutView,
    Wait,
    Widen,
    decide,
    rollback_id,
    rollback_settled,
    stage_devices,
)
from edgecascade.cloud.settings import RolloutCriteria

NOW = 10_000.0
CRITERIA = RolloutCriteria(stage_min_s=60, min_verdicts=10, min_results=100)
TARGETS = ["cam1", "cam2", "cam3", "cam4"]


def rollout(
    state: RolloutState = RolloutState.RUNNING, stage: int = 0, started: float = NOW - 120
) -> RolloutView:
    stages = [50.0, 100.0]
    return RolloutView(
        id="ro-1",
        state=state,
        targets=TARGETS,
        stages=stages,
        stage=stage,
        stage_started_at=started,
        offered=stage_devices(TARGETS, stages[stage]),
        criteria=CRITERIA,
    )


def figures(
    model: str,
    verdicts: int = 50,
    disagreement: float = 0.1,
    results: int = 500,
    escalation_rate: float = 0.05,
    invoke_ms: float = 4.0,
) -> Figures:
    return Figures(model, verdicts, disagreement, results, escalation_rate, invoke_ms)


def evaluation(
    devices: list[str], status: str = "applied", new: Figures | None = None
) -> Evaluation:
    """Every one of ``devices`` acked ``status``; the new model as good as the baseline unless
    ``new`` says otherwise."""
    baseline = figures("m 1")
    comparison = Comparison(at=NOW, new=new or replace(baseline, model="m 2"), baseline=baseline)
    return Evaluation(Acks(model=dict.fromkeys(devices, status)), comparison)


def test_a_sound_stage_widens_to_the_next_stages_devices() -> None:
    canary = rollout()
    decision = decide(canary, evaluation(canary.offered), NOW)
    assert decision == Widen(stage=1, offered=TARGETS)
    assert decision.offered[:2] == canary.offered  # the devices offered before stay first


def test_the_last_stage_completes() -> None:
    last = rollout(stage=1)
    assert decide(last, evaluation(TARGETS), NOW) == Complete()


def test_too_many_failed_devices_roll_back() -> None:
    canary = rollout()
    acks = Acks(model={"cam1": "failed", "cam2": "applied"})  # 50 % failed, 20 % allowed
    decision = decide(canary, replace(evaluation([]), acks=acks), NOW)
    assert isinstance(decision, RollBack)
    assert decision.reason.startswith("1 of 2 devices failed to apply the model")


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (figures("m 2", disagreement=0.4), "the cloud disagrees with 40% of m 2's escalations"),
        (figures("m 2", escalation_rate=0.3), "m 2 escalates 30% of 500 results"),
        (figures("m 2", invoke_ms=12.0), "m 2 takes 12.00 ms per invoke (median)"),
    ],
    ids=["disagreement", "escalation", "latency"],
)
def test_each_quality_gate_rolls_back_with_the_figures(new: Figures, reason: str) -> None:
    canary = rollout()
    decision = decide(canary, evaluation(canary.offered, new=new), NOW)
    assert isinstance(decision, RollBack)
    assert decision.reason.startswith(reason), decision.reason


def test_a_regression_on_too_few_samples_is_not_judged_but_waited_for() -> None:
    canary = rollout()
    new = figures("m 2", verdicts=3, disagreement=1.0, results=20, escalation_rate=1.0)
    decision = decide(canary, evaluation(canary.offered, new=new), NOW)
    assert decision == Wait("waiting for 10 verdicts on m 2 (3 so far)")


@pytest.mark.parametrize(
    ("started", "acked", "waits_for"),
    [
        (NOW - 120, ["cam1"], "1 device(s) to apply the model"),
        (NOW - 20, None, "40 s of the stage"),
    ],
    ids=["devices", "stage time"],
)
def test_a_stage_waits_for_its_evidence(
    started: float, acked: list[str] | None, waits_for: str
) -> None:
    canary = rollout(started=started)
    decision = decide(canary, evaluation(acked or canary.offered), NOW)
    assert decision == Wait(f"waiting for {waits_for}")


def test_a_paused_or_finished_rollout_is_left_alone_whatever_the_figures() -> None:
    bad = figures("m 2", disagreement=1.0)
    for state in (RolloutState.PAUSED, RolloutState.COMPLETED, RolloutState.ROLLED_BACK):
        paused = rollout(state=state)
        assert decide(paused, evaluation(["cam1"], "failed", new=bad), NOW) == Leave()


def test_a_rollback_settles_once_every_device_offered_runs_the_baseline_again() -> None:
    back = rollout(state=RolloutState.ROLLING_BACK)
    assert back.offered == ["cam1", "cam2"]
    assert not rollback_settled(back, Acks(rollback={"cam1": "applied"}))
    assert rollback_settled(back, Acks(rollback={"cam1": "applied", "cam2": "committed"}))
    assert rollback_id("ro-1") == "ro-1-rb"


def test_states_keep_the_values_the_database_stores() -> None:
    assert [s.value for s in RolloutState] == [
        "running",
        "paused",
        "completed",
        "rolling_back",
        "rolled_back",
    ]
