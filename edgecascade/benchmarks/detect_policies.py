"""The offline evaluator of ``bench detect``, part two: each escalation policy simulated on what
the two detectors found (:mod:`.detect_offline`), with the agent's own rules.

Edge-only answers every frame with the edge's boxes (the card's threshold, 0.5); cloud-only
escalates every frame (``mode: always``) and answers with the cloud's. A cascade band runs
the agent's :class:`~edgecascade.edge_agent.detection_policy.DetectionPolicy` per camera, rules
``score_band`` (a score in ``[low, high)``), ``count`` (the count differs from the most frequent
of the previous ``count_window`` frames) and ``empty`` (nothing found on a frame the scene gate
passed as changed); its detections are the edge's down to ``min(low, 0.5)``, the threshold the
card would be given. The scene gate is the agent's
:class:`~edgecascade.edge_agent.gating.SceneGate` fed the frame's thumbnail, used only for
``changed``: by default the offline run does not skip the frames it finds unchanged, as the
agent does.
Budget, cooldown and audit samples are left out (unlimited, as ``bench cascade`` runs them).
With ``--gate-skips`` the simulation skips those frames as the agent does: a skipped frame sends
nothing and keeps its camera's last answer, as the topology run scores it.
An escalated frame's answer is the cloud's, any other the edge's.

A band may instead name the *local* change measure (``measure="max"``: the largest absolute
difference of one thumbnail cell, the agent's ``gating.measure = max_cell``): a far person moves
the mean of 1024 cells about as much as an empty scene's noise and gain drift do, while the
cell it stands in changes far more than noise does.

A band may add the ``fewer_than_cloud`` rule (``cloud=True``, named ``...+cloud``): a changed frame
on which the edge found fewer boxes than the cloud counted on the camera's last escalated frame is
unsure too; the simulation takes the cloud's count from its answer on the frame it escalated (the
agent gets it from that frame's verdict, which comes back long before the next frame at 2 fps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.detect_metrics import Found
from edgecascade.benchmarks.detect_offline import (
    EDGE_THRESHOLD,
    FrameRun,
    add_ratios,
    figures,
    result_bytes,
)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Band:
    """A cascade policy: the uncertainty band ``[low, high)``, the scene gate's threshold on the
    absolute difference of 32x32 gray thumbnails (0-255) by ``measure`` (``mean`` over the cells,
    the agent's default; ``max``: the most changed cell, ``gating.measure = max_cell``), and
    the count rule's
    window (the agent's default, 5)."""

    low: float
    high: float
    gate: float
    measure: str = "mean"
    count_window: int = 5
    cloud: bool = False  # the fewer_than_cloud rule too

    @property
    def name(self) -> str:
        gate = f"{self.gate:g}" if self.measure == "mean" else f"{self.measure}{self.gate:g}"
        return f"band-{self.low:.2f}-{self.high:.2f}@{gate}{'+cloud' if self.cloud else ''}"

    @property
    def rules(self) -> list[str]:
        """The agent's ``escalation.detection.rules`` of this band."""
        return ["score_band", "count", "empty", *(["fewer_than_cloud"] if self.cloud else [])]

    @property
    def gate_measure(self) -> str:
        """The agent's ``gating.measure`` of this band."""
        return "mean" if self.measure == "mean" else "max_cell"

    @property
    def floor(self) -> float:
        """The edge's score threshold under this band."""
        return min(self.low, EDGE_THRESHOLD)


DEFAULT_BANDS = (
    Band(0.5, 0.7, 2.0),
    Band(0.5, 0.8, 0.5),
    Band(0.3, 0.8, 0.5),
    Band(0.5, 0.8, 8.0, "max"),
    Band(0.5, 0.8, 16.0, "max"),
    Band(0.5, 0.8, 0.5, cloud=True),
    Band(0.5, 0.8, 8.0, "max", cloud=True),
    Band(0.5, 0.8, 16.0, "max", cloud=True),
    Band(0.5, 0.85, 16.0, "max", cloud=True),
)


def _policy(band: Band) -> Any:
    from edgecascade.edge_agent.detection_policy import DetectionPolicy
    from edgecascade.edge_agent.policy import EscalationPolicy
    from edgecascade.edge_agent.settings import DetectionEscalationSettings, EscalationSettings

    rules = DetectionEscalationSettings(
        rules=band.rules, score_low=band.low, score_high=band.high, count_window=band.count_window
    )
    return DetectionPolicy(EscalationPolicy(EscalationSettings(detection=rules)))


GATED = "gated"  # the reason of a frame the scene gate skipped (``skip``): no result, no cost


def escalations(runs: list[FrameRun], band: Band, skip: bool = False) -> list[str | None]:
    """Per frame, the agent's reason to escalate it at ``band`` (None: it does not). With
    ``skip`` a frame the scene gate finds unchanged is skipped as the agent skips it:
    :data:`GATED`, and the rules never see it."""
    from edgecascade.edge_agent.gating import SceneGate
    from edgecascade.shared.fields import DetectedObject

    gates: dict[str, SceneGate] = {}
    policies: dict[str, Any] = {}
    reasons: list[str | None] = []
    for run in runs:
        if run.camera not in gates:
            gates[run.camera] = SceneGate(band.gate, band.gate_measure)
            policies[run.camera] = _policy(band)
        gate = gates[run.camera]
        passed = gate.changed(run.thumbnail)
        if skip and not passed:
            reasons.append(GATED)
            continue
        kept = [
            DetectedObject(label=d.label, score=d.score, box=d.box)
            for d in run.edge
            if d.score >= band.floor
        ]
        reason = policies[run.camera].unsure(kept, passed and gate.compared)
        if reason is not None:  # the verdict on this frame: how many faces the cloud found
            policies[run.camera].cloud_counted(len(run.cloud))
        reasons.append(reason)
    return reasons


def score_policy(
    runs: list[FrameRun],
    name: str,
    family: str,
    escalated: list[bool],
    floor: float,
    gated: list[bool] | None = None,
) -> dict[str, Any]:
    """A simulated policy: final answers are the cloud's where escalated, else the edge's
    (scoring at least ``floor``); a ``gated`` frame sends nothing and keeps its camera's last
    answer, as the topology run scores it."""
    skipped = gated or [False] * len(runs)
    final: list[list[Found]] = []
    last: dict[str, list[Found]] = {}
    sent = 0
    for r, up, gone in zip(runs, escalated, skipped, strict=True):
        if gone:
            final.append(last.get(r.camera, []))
            continue
        edge = [d for d in r.edge if d.score >= floor]
        result = result_bytes(r.camera, r.index, edge)
        sent += result + (r.jpeg_bytes + result if up else 0)
        final.append(r.cloud if up else edge)
        last[r.camera] = final[-1]
    entry = figures(name, family, [r.truth for r in runs], final, escalated, sent)
    entry["gated_fraction"] = sum(skipped) / len(runs) if runs else None
    return entry


def _rule(reason: str) -> str:
    return reason.split(" ", 1)[0].rstrip(":")


def evaluate(
    runs: list[FrameRun], bands: tuple[Band, ...], skip: bool = False
) -> list[dict[str, Any]]:
    """Edge-only, cloud-only and the cascade at each band, with ratios to cloud-only; with
    ``skip``, the cascades' gates skip unchanged frames as the agent's do."""
    everything = [True] * len(runs)
    policies = [
        score_policy(runs, "edge-only", "edge-only", [False] * len(runs), EDGE_THRESHOLD),
        score_policy(runs, "cloud-only", "cloud-only", everything, EDGE_THRESHOLD),
    ]
    for band in bands:
        reasons = escalations(runs, band, skip)
        up = [r not in (None, GATED) for r in reasons]
        gated = [r == GATED for r in reasons]
        entry = score_policy(runs, band.name, "cascade", up, band.floor, gated)
        entry["band"] = [band.low, band.high]
        entry["edge_threshold"] = band.floor
        entry["gate_threshold"] = band.gate
        entry["gate_measure"] = band.measure
        entry["count_window"] = band.count_window
        entry["reasons"] = {
            rule: sum(1 for r in reasons if r is not None and _rule(r) == rule)
            for rule in ("score_band", "count", "empty", "fewer_than_cloud")
        }
        policies.append(entry)
    add_ratios(policies)
    return policies
