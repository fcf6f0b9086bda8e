"""Scoring one policy's run of ``bench cascade`` from what crossed the wire.

Per frame the *first answer* is the edge result (available on the device when the result
message is made) and the *final answer* is the cloud's verdict where the frame was escalated
and the verdict came back, the edge result otherwise. Accuracy is the final answer against the
frame's ground truth (its folder). Latencies start when the frame enters the model: first =
the device's preprocess + invoke + postprocess (as it reports them in the result), final = that
plus the time from the result's creation on the device to the verdict's arrival at the site
broker (where the device receives it), or the first answer for frames never escalated. The
replay's read-ahead (frames read from disk wait in a queue for their turn) is left out: a
camera has no such wait, and it would add the same few frame periods to every policy. Bytes are
what the gateway sent up for the device, per kind (:mod:`edgecascade.benchmarks.cascade_tap`).
The calibrated policies' temperature is fitted on the same traffic (:func:`fit_temperature_on`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.cascade_tap import DeviceTraffic
from edgecascade.shared.topics import Kind


@dataclass(frozen=True)
class PolicyPoint:
    """One escalation policy to run: the ``[escalation]`` settings of its agent."""

    name: str
    family: str  # edge-only, cloud-only, threshold, margin, entropy, calibrated, budget, cooldown
    escalation: dict[str, Any] = field(default_factory=dict)
    calibrated: bool = False  # run the edge model with the temperature fitted in this run


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    import numpy as np  # not at import: the CLI is built on installs without numpy

    array = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(array, 50)), "p95": float(np.percentile(array, 95))}


def score(point: PolicyPoint, traffic: DeviceTraffic, agent: dict[str, int]) -> dict[str, Any]:
    """The figures of one policy; ratios to cloud-only are added by :func:`add_ratios`."""
    answers = traffic.answers
    labelled = [(rid, a) for rid, a in answers.items() if a.ground_truth is not None]
    escalated = [rid for rid, a in answers.items() if a.escalated]
    edge_right = final_right = 0
    first_ms: list[float] = []
    final_ms: list[float] = []
    verdict_ms: list[float] = []
    for rid, answer in labelled:
        verdict = traffic.verdicts.get(rid) if answer.escalated else None
        final = verdict.label if verdict is not None else answer.label
        edge_right += answer.label == answer.ground_truth
        final_right += final == answer.ground_truth
    for rid, answer in answers.items():
        first = answer.compute_ms
        first_ms.append(first)
        verdict = traffic.verdicts.get(rid) if answer.escalated else None
        if verdict is not None:
            verdict_ms.append(first + (verdict.arrived_at - answer.answered_at) * 1000)
        final_ms.append(verdict_ms[-1] if verdict is not None else first)
    frames = len(answers)
    # Whole bytes (a batch shared between devices is split in proportion, so shares are floats).
    result_bytes = round(traffic.uplink_bytes.get(Kind.RESULT_BATCH.value, 0.0))
    frame_bytes = round(traffic.uplink_bytes.get(Kind.ESCALATION.value, 0.0))
    return {
        "policy": point.name,
        "family": point.family,
        "escalation": point.escalation,
        "calibrated": point.calibrated,
        "frames": frames,
        "labelled_frames": len(labelled),
        "agent": agent,
        "escalated": len(escalated),
        "escalated_fraction": len(escalated) / frames if frames else 0.0,
        "verdicts": len(verdict_ms),
        "verdicts_missing": len(escalated) - len(verdict_ms),
        "edge_accuracy": edge_right / len(labelled) if labelled else None,
        "accuracy": final_right / len(labelled) if labelled else None,
        "first_answer_ms": percentiles(first_ms),
        "final_answer_ms": percentiles(final_ms),
        "verdict_ms": percentiles(verdict_ms),
        "uplinked_results": traffic.uplinked_results,
        "result_bytes": result_bytes,
        "frame_bytes": frame_bytes,
        "uplink_bytes": result_bytes + frame_bytes,
        "uplink_bytes_per_frame": (result_bytes + frame_bytes) / frames if frames else 0.0,
        "other_uplink_bytes": round(
            sum(v for k, v in traffic.uplink_bytes.items() if k not in _FRAME_KIND_VALUES)
        ),
    }


_FRAME_KIND_VALUES = frozenset({Kind.RESULT_BATCH.value, Kind.ESCALATION.value})


def add_ratios(policies: list[dict[str, Any]], cloud_only: dict[str, Any]) -> None:
    """Bytes as a fraction of cloud-only's, accuracy in points against cloud-only's."""
    for entry in policies:
        entry["bytes_ratio"] = _ratio(entry["uplink_bytes"], cloud_only["uplink_bytes"])
        entry["frame_bytes_ratio"] = _ratio(entry["frame_bytes"], cloud_only["frame_bytes"])
        if entry["accuracy"] is not None and cloud_only["accuracy"] is not None:
            entry["accuracy_vs_cloud_points"] = 100 * (entry["accuracy"] - cloud_only["accuracy"])
        else:
            entry["accuracy_vs_cloud_points"] = None


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference else None


def fit_temperature_on(traffic: DeviceTraffic, edge_model: Path) -> dict[str, Any]:
    """The cloud's calibration fit on every frame's edge top-k and the cloud's verdict on it."""
    from edgecascade.cloud.calibration import Pair, fit_temperature
    from edgecascade.shared.runtime.card import load_card_for

    card = load_card_for(edge_model)
    index = {label: i for i, label in enumerate(card.labels)}
    pairs = [
        Pair(top=answer.top, truth=index[traffic.verdicts[rid].label])
        for rid, answer in traffic.answers.items()
        if rid in traffic.verdicts and traffic.verdicts[rid].label in index
    ]
    fit = fit_temperature(pairs, len(card.labels))
    return {
        "temperature": round(fit.temperature * card.temperature, 4),
        "samples": fit.samples,
        "nll_before": fit.nll_before,
        "nll_after": fit.nll_after,
    }
