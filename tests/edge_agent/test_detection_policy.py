"""The detection escalation rules: score band, count against the recent mode, empty on change;
mode always; the shared budget; the reason naming the rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edgecascade.edge_agent.detection_policy import DetectionPolicy
from edgecascade.edge_agent.policy import EscalationPolicy
from edgecascade.edge_agent.settings import DetectionEscalationSettings, EscalationSettings
from edgecascade.shared.fields import DetectedObject

UNLIMITED = {"budget_per_minute": 1e6, "burst": 100_000, "cooldown_s": 0.0}


def box(label: str = "face", score: float = 0.9, x: float = 10.0) -> DetectedObject:
    return DetectedObject(label=label, score=score, box=(x, 10.0, x + 20.0, 30.0))


def policy(mode: str = "max_prob", budget: dict[str, Any] | None = None, **detection: Any) -> Any:
    settings = EscalationSettings(
        mode=mode,
        **(UNLIMITED if budget is None else budget),
        detection=DetectionEscalationSettings(**detection),
    )
    return DetectionPolicy(EscalationPolicy(settings))


def test_a_score_in_the_band_is_unsure_and_the_reason_names_it() -> None:
    p = policy(rules=["score_band"], score_low=0.5, score_high=0.7)
    assert p.unsure([box(score=0.9)], changed=False) is None
    assert p.unsure([box(score=0.7)], changed=False) is None  # the upper bound is excluded
    reason = p.unsure([box(score=0.9), box(score=0.5)], changed=False)
    assert reason == "score_band face 0.500 in [0.500, 0.700)"  # the lower bound is included
    decision = p.decide([box(score=0.6)], changed=False)
    assert decision.escalate and decision.reason.startswith("score_band face 0.600")


def test_a_count_that_differs_from_the_mode_of_the_window_is_unsure() -> None:
    p = policy(rules=["count"], count_window=3)
    assert p.unsure([box()], changed=False) is None  # no history yet
    assert p.unsure([box()], changed=False) is None
    reason = p.unsure([box(), box(x=100)], changed=False)
    assert reason == "count face 2 != 1 (mode of the last 2)"
    # History [1, 1, 2]: the mode is still 1, so a single face is sure again.
    assert p.unsure([box()], changed=False) is None
    # [1, 2, 1] -> 0 faces now differs; a new label counts from 0 in the history.
    assert p.unsure([], changed=False) == "count face 0 != 1 (mode of the last 3)"
    assert p.unsure([box("person")], changed=False) is not None


def test_count_by_total_ignores_which_label_it_is() -> None:
    p = policy(rules=["count"], count_by="total", count_window=2)
    assert p.unsure([box("face")], changed=False) is None
    assert p.unsure([box("person")], changed=False) is None
    assert p.unsure([box(), box(x=50)], changed=False) == "count * 2 != 1 (mode of the last 2)"


def test_nothing_found_on_a_changed_scene_is_unsure() -> None:
    p = policy(rules=["empty"])
    assert p.unsure([], changed=False) is None
    assert p.unsure([box()], changed=True) is None
    assert p.unsure([], changed=True) == "empty: nothing found on a changed scene"


def test_mode_always_escalates_every_frame_and_no_rule_means_never() -> None:
    always = policy(mode="always", rules=[])
    assert all(always.decide([box()] * n, changed=False).escalate for n in range(3))
    assert always.decide([box()], False).reason == "always"
    never = policy(rules=[])
    assert not any(never.decide([box(score=s)], True).escalate for s in (0.5, 0.6, 0.99))


def test_unsure_frames_spend_the_shared_token_bucket() -> None:
    p = policy(budget={"budget_per_minute": 0.0, "burst": 2, "cooldown_s": 0.0}, rules=["empty"])
    decisions = [p.decide([], changed=True) for _ in range(4)]
    assert [d.escalate for d in decisions] == [True, True, False, False]
    assert decisions[-1].reason == "over budget" and p.policy.over_budget == 2


def test_an_inverted_band_is_refused_naming_both_bounds() -> None:
    with pytest.raises(ValidationError, match=r"score_low 0\.8 is above score_high 0\.6"):
        DetectionEscalationSettings(score_low=0.8, score_high=0.6)
    with pytest.raises(ValidationError):
        DetectionEscalationSettings(rules=["loud"])


def test_fewer_boxes_than_the_cloud_counted_on_a_changed_scene_is_unsure() -> None:
    p = policy(rules=["fewer_than_cloud"])
    assert p.unsure([], changed=True) is None  # no verdict yet: nothing to hold against
    p.cloud_counted(2)  # the cloud found a far face besides the near one the edge sees
    assert p.unsure([box()], changed=False) is None  # an unchanged scene is left alone
    assert p.unsure([box()], changed=True) == "fewer_than_cloud 1 < 2 on a changed scene"
    assert p.unsure([box(), box(x=100)], changed=True) is None
    p.cloud_counted(1)  # the far person left: the count came down to the edge's
    assert p.unsure([box()], changed=True) is None
    assert policy().unsure([], changed=True) == "empty: nothing found on a changed scene"
    defaults = policy()
    defaults.cloud_counted(3)
    assert defaults.unsure([box()], changed=True) is None  # not a default rule
