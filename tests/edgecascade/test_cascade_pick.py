"""``edgecascade cascade pick``: the cheapest policy meeting a target, from measured figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecascade.cascade_pick import describe, load_policies, pick_by_accuracy, pick_by_bytes
from edgecascade.cli import main
from edgecascade.shared.errors import EdgeCascadeError


def _policy(name: str, family: str, accuracy: float, bytes_ratio: float) -> dict[str, Any]:
    return {
        "policy": name,
        "family": family,
        "escalation": {"mode": "max_prob", "threshold": 0.8},
        "calibrated": False,
        "accuracy": accuracy,
        "accuracy_vs_cloud_points": 100 * (accuracy - 0.94),
        "bytes_ratio": bytes_ratio,
        "escalated_fraction": bytes_ratio / 2,
    }


POLICIES = [
    _policy("cloud-only", "cloud-only", 0.94, 1.0),
    _policy("edge-only", "edge-only", 0.90, 0.05),
    _policy("threshold-0.60", "threshold", 0.925, 0.12),
    _policy("threshold-0.80", "threshold", 0.937, 0.20),
    _policy("margin-0.50", "margin", 0.9375, 0.24),
    _policy("entropy-0.15", "entropy", 0.941, 0.30),
]


def test_accuracy_target_picks_the_fewest_bytes_that_meet_it() -> None:
    assert pick_by_accuracy(POLICIES, 0.5)["policy"] == "threshold-0.80"  # -0.3 points, 0.20
    assert pick_by_accuracy(POLICIES, 0.0)["policy"] == "entropy-0.15"  # only one at/above cloud
    assert pick_by_accuracy(POLICIES, 2.0)["policy"] == "threshold-0.60"


def test_bytes_budget_picks_the_most_accurate_within_it() -> None:
    assert pick_by_bytes(POLICIES, 0.25)["policy"] == "margin-0.50"
    assert pick_by_bytes(POLICIES, 0.2)["policy"] == "threshold-0.80"  # the budget is inclusive
    assert pick_by_bytes(POLICIES, 0.15)["policy"] == "threshold-0.60"


def test_references_are_never_picked() -> None:
    # edge-only fits a 0.1 budget and cloud-only is within 0 points, but neither is a cascade.
    with pytest.raises(EdgeCascadeError, match=r"at most 0\.1 of cloud-only's bytes"):
        pick_by_bytes(POLICIES, 0.1)
    only_references = POLICIES[:2]
    with pytest.raises(EdgeCascadeError, match="no cascade policies"):
        pick_by_accuracy(only_references, 1.0)


def test_an_unmet_target_is_named_with_the_closest_policy() -> None:
    with pytest.raises(EdgeCascadeError) as info:
        pick_by_accuracy(POLICIES[:5], 0.0)
    assert "within 0 points of cloud-only accuracy" in str(info.value)
    assert "closest measured: margin-0.50" in str(info.value)


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5])
def test_a_budget_outside_0_1_is_refused(budget: float) -> None:
    with pytest.raises(
        EdgeCascadeError, match=f"--bytes-budget must be in \\(0, 1\\], got {budget}"
    ):
        pick_by_bytes(POLICIES, budget)


def test_describe_gives_the_agent_configuration() -> None:
    text = describe(POLICIES[3])
    assert text.startswith("picked threshold-0.80: accuracy 93.70 % (-0.30 points")
    assert '[escalation]\nmode = "max_prob"\nthreshold = 0.8' in text


def test_cli_reads_the_bench_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cascade.json"
    path.write_text(json.dumps({"pairs": {"fashion": {"policies": POLICIES}}}))
    assert main(["cascade", "pick", "--from", str(path), "--bytes-budget", "0.2"]) == 0
    assert capsys.readouterr().out.startswith("picked threshold-0.80")
    path.write_text(json.dumps({"pairs": {"fashion": {"policies": POLICIES[:5]}}}))
    assert main(["cascade", "pick", "--from", str(path), "--accuracy-within", "0.01"]) == 2
    assert "no policy is within 0.01 points" in capsys.readouterr().err


def test_bad_files_and_pairs_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(EdgeCascadeError, match=f"--from {missing}: no such file"):
        load_policies(missing, None)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(EdgeCascadeError, match="not readable JSON"):
        load_policies(broken, None)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"sizes": {}}))
    with pytest.raises(EdgeCascadeError, match="output of `edgecascade bench cascade`"):
        load_policies(other, None)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"pairs": {"fashion": {"policies": POLICIES}}}))
    with pytest.raises(EdgeCascadeError, match=r"--pair 'imagenet' is not in .*\['fashion'\]"):
        load_policies(good, "imagenet")
