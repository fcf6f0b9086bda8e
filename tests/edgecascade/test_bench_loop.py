"""``bench loop``: its scoring on hand-made traffic, and its refusals of bad arguments.

The whole run (brokers, cloud, worker, gateway, trainer, rollout; needs torch) is a benchmark,
not a test: ``edgecascade bench loop`` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecascade.benchmarks.cascade_tap import CloudAnswer, DeviceTraffic, EdgeAnswer
from edgecascade.benchmarks.loop_report import (
    format_table,
    judge,
    score_phase,
    summarise,
    timeline,
    window,
)
from edgecascade.cli import main
from edgecascade.shared.topics import Kind


def answer(
    truth: str, label: str, escalated: bool, at: float, version: str = "1.0.0"
) -> EdgeAnswer:
    return EdgeAnswer(
        frame_id=f"{truth}/{at}.png",
        label=label,
        top=((0, 0.9),),
        ground_truth=truth,
        escalated=escalated,
        compute_ms=1.0,
        answered_at=at,
        model_version=version,
    )


def traffic(answers: dict[str, EdgeAnswer], verdicts: dict[str, str], sent: float) -> DeviceTraffic:
    out = DeviceTraffic(answers=dict(answers))
    out.verdicts = {rid: CloudAnswer(label, 0.0) for rid, label in verdicts.items()}
    out.uplink_bytes[Kind.RESULT_BATCH.value] = sent
    out.uplinked_results = len(answers)
    return out


def test_a_window_is_what_came_between_two_snapshots_and_after_since() -> None:
    old = {"r1": answer("bag", "bag", False, 10.0)}
    new = {
        **old,
        "r2": answer("coat", "shirt", True, 20.0),
        "r3": answer("bag", "bag", False, 5.0),  # sent late from an outbox: before `since`
    }
    before = {"cam1": traffic(old, {}, 100.0)}
    after = {"cam1": traffic(new, {"r2": "coat"}, 350.0)}
    merged = window(before, after, since=15.0)
    assert set(merged.answers) == {"r2"}
    assert merged.verdicts["r2"].label == "coat"
    assert merged.uplink_bytes[Kind.RESULT_BATCH.value] == 250.0
    assert merged.uplinked_results == 2


def test_a_phase_scores_the_final_answer_and_counts_models() -> None:
    answers = {
        "r1": answer("bag", "bag", False, 1.0),
        "r2": answer("coat", "shirt", True, 2.0),  # the verdict corrects it
        "r3": answer("coat", "shirt", True, 3.0, "1.1.0"),  # the verdict is wrong
        "r4": answer("dress", "coat", False, 4.0, "1.1.0"),
    }
    phase = score_phase(
        "B",
        traffic(answers, {"r2": "coat", "r3": "shirt"}, 400.0),
        {"mode": "max_prob"},
        {"clean": 0.9, "drifted": 0.7},
    )
    assert phase["escalated_fraction"] == 0.5
    assert phase["accuracy_after_verdicts"] == 0.5
    assert phase["edge_accuracy_live"] == 0.25
    assert phase["uplink_bytes_per_frame"] == 100.0
    assert phase["models"] == {"1.0.0": 2, "1.1.0": 2}


def phase(clean: float, drifted: float, escalated: float) -> dict[str, object]:
    return {
        "edge_only_accuracy_clean": clean,
        "edge_only_accuracy_drifted": drifted,
        "escalated_fraction": escalated,
        "accuracy_after_verdicts": 0.9,
        "uplink_bytes_per_frame": 500.0,
    }


def test_the_summary_follows_the_issues_formulas_and_judges_the_targets() -> None:
    phases = {"A": phase(0.9, 0.7, 0.2), "B": phase(0.9, 0.7, 0.75), "C": phase(0.896, 0.87, 0.3)}
    runs = [
        {"state": "rejected", "dataset_size": 2500},
        {"state": "shipped", "dataset_size": 2900},
    ]
    summary = summarise(phases, runs)
    assert summary["drift_cost_points"] == 20.0
    assert summary["recovered_fraction"] == pytest.approx(0.85)  # (0.87 - 0.7) / (0.9 - 0.7)
    assert summary["escalation_reduction"] == pytest.approx(0.6)  # 1 - 0.3 / 0.75
    assert summary["original_accuracy_change_points"] == pytest.approx(-0.4)
    assert (summary["verdicts_used"], summary["rounds"]) == (2900, 2)
    judged = judge(summary)
    assert all(entry["met"] for entry in judged.values())
    worse = judge({**summary, "original_accuracy_change_points": -0.6, "verdicts_used": None})
    assert not worse["original_accuracy_change_points"]["met"]
    assert not worse["verdicts_used"]["met"]


def test_the_timeline_bins_answers_and_spreads_bytes_over_time() -> None:
    answers = {
        "r1": answer("bag", "bag", False, 100.5),
        "r2": answer("coat", "shirt", True, 101.0),
        "r3": answer("coat", "coat", False, 106.0, "1.1.0"),
    }
    snapshot = {"cam1": traffic(answers, {"r2": "coat"}, 0.0)}
    uplink = [(100.0, 0.0), (105.0, 1000.0), (110.0, 1500.0)]
    bins = timeline(snapshot, uplink, start=100.0, bins_s=5.0)
    assert [b["t"] for b in bins] == [0.0, 5.0]
    assert bins[0]["accuracy_after_verdicts"] == 1.0 and bins[0]["edge_accuracy"] == 0.5
    assert bins[0]["uplink_bytes_per_frame"] == 500.0
    assert bins[1]["model"] == "1.1.0" and bins[1]["uplink_bytes_per_frame"] == 500.0


def test_the_table_names_each_phase_the_rounds_and_the_targets() -> None:
    phases = {k: {**phase(0.9, 0.7, 0.5), "phase": k} for k in ("A", "B", "C", "cloud-only")}
    summary = summarise(phases, [{"state": "shipped", "dataset_size": 100}])
    report = {
        **summary,
        "phases": phases,
        "targets": judge(summary),
        "training_runs": [
            {
                "parent": "e@1",
                "child": "1.1.0",
                "state": "shipped",
                "dataset_size": 100,
                "reason": "all gates passed",
            }
        ],
        "edge_model": "edge.tflite",
        "cloud_model": "cloud.tflite",
        "cloud_model_accuracy": {"clean": 0.94, "drifted": 0.91},
        "after_loop_vs_cloud_only": {"accuracy_vs_cloud_points": -1.0, "bytes_ratio": 0.5},
    }
    table = format_table(report)
    assert "C drifted scene, after the loop" in table and "cloud-only" in table
    assert "e@1 -> 1.1.0: shipped on 100 verdicts" in table
    assert "recovered_fraction" in table and "NOT met" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--devices", "0"], "--devices must be at least 1"),
        (["--frames-b", "0"], "--frames-b must be at least 1"),
        (["--threshold", "1.5"], "--threshold must be in (0, 1], got 1.5"),
        (["--cloud-model", "no-such.tflite"], "--cloud-model no-such.tflite: no such file"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["bench", "loop", *argv]) != 0
    assert message in capsys.readouterr().err


def test_the_drifts_offered_are_the_zoos() -> None:
    from edgecascade.benchmarks.loop import DRIFT_NAMES
    from edgecascade.modelzoo.drift import DEFAULT_DRIFT, DRIFTS

    assert sorted(DRIFT_NAMES) == sorted(DRIFTS)
    assert DRIFTS[DRIFT_NAMES[0]] == DEFAULT_DRIFT  # the default is the zoo's default
