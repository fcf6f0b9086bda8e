"""Scoring, table, targets and plot of ``bench loop``.

A phase's live figures come from what crossed the wire while it ran (the traffic of its cameras
between two snapshots of :class:`~edgecascade.benchmarks.cascade_tap.WireTap`, scored like a
``bench cascade`` policy); its edge-only accuracy from the model its cameras ran, measured through
LiteRT on the held-out evaluation frames, clean and drifted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from edgecascade.benchmarks.cascade import REPO
from edgecascade.benchmarks.cascade_score import PolicyPoint, score
from edgecascade.benchmarks.cascade_tap import DeviceTraffic
from edgecascade.benchmarks.plotting import pyplot

Snapshot = dict[str, DeviceTraffic]

# issue 17's targets: (key, comparison, bound)
TARGETS = (
    ("drift_cost_points", ">=", 10.0),
    ("recovered_fraction", ">=", 0.8),
    ("verdicts_used", "<=", 3000),
    ("escalation_reduction", ">=", 0.4),
    ("original_accuracy_change_points", ">=", -0.5),
)


def window(before: Snapshot, after: Snapshot, since: float = 0.0) -> DeviceTraffic:
    """The traffic of every camera between two snapshots, as one device's; only results made
    at ``since`` or later (a restarted camera first sends what its outbox kept)."""
    merged = DeviceTraffic()
    for name, late in after.items():
        early = before.get(name, DeviceTraffic())
        for rid, answer in late.answers.items():
            if rid not in early.answers and answer.answered_at >= since:
                merged.answers[rid] = answer
                if rid in late.verdicts:
                    merged.verdicts[rid] = late.verdicts[rid]
        for kind, size in late.uplink_bytes.items():
            merged.uplink_bytes[kind] += size - early.uplink_bytes.get(kind, 0.0)
        merged.uplinked_results += late.uplinked_results - early.uplinked_results
    return merged


def score_phase(
    name: str, traffic: DeviceTraffic, escalation: dict[str, Any], edge_only: dict[str, float]
) -> dict[str, Any]:
    """The live figures of one phase and its edge-only accuracy on held-out frames."""
    entry = score(PolicyPoint(name, "loop", escalation), traffic, {})
    versions: dict[str, int] = defaultdict(int)
    for answer in traffic.answers.values():
        versions[answer.model_version] += 1
    return {
        "phase": name,
        "models": dict(versions),
        "frames": entry["frames"],
        "escalated_fraction": entry["escalated_fraction"],
        "accuracy_after_verdicts": entry["accuracy"],
        "edge_accuracy_live": entry["edge_accuracy"],
        "uplink_bytes_per_frame": entry["uplink_bytes_per_frame"],
        "verdicts_missing": entry["verdicts_missing"],
        "edge_only_accuracy_clean": edge_only["clean"],
        "edge_only_accuracy_drifted": edge_only["drifted"],
    }


def summarise(phases: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The top-level keys issue 17 names, from phases A, B and C."""
    a, b, c = phases["A"], phases["B"], phases["C"]
    # A: the original model on the frames its cameras saw (the original distribution);
    # B and C: the model of that phase on the drifted held-out frames.
    acc_a, acc_b = a["edge_only_accuracy_clean"], b["edge_only_accuracy_drifted"]
    acc_c = c["edge_only_accuracy_drifted"]
    shipped = [r for r in runs if r["state"] == "shipped"]
    return {
        "drift_cost_points": round(100 * (acc_a - acc_b), 2),
        "recovered_fraction": round((acc_c - acc_b) / (acc_a - acc_b), 4)
        if acc_a != acc_b
        else None,
        "escalation_reduction": round(1 - c["escalated_fraction"] / b["escalated_fraction"], 4)
        if b["escalated_fraction"]
        else None,
        "original_accuracy_change_points": round(
            100 * (c["edge_only_accuracy_clean"] - a["edge_only_accuracy_clean"]), 2
        ),
        "verdicts_used": shipped[-1]["dataset_size"] if shipped else None,
        "rounds": len(runs),
    }


def judge(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    judged = {}
    for key, comparison, bound in TARGETS:
        value = summary.get(key)
        met = value is not None and (value >= bound if comparison == ">=" else value <= bound)
        judged[key] = {"value": value, "target": f"{comparison} {bound:g}", "met": met}
    return judged


def format_table(report: dict[str, Any]) -> str:
    phases = report["phases"]
    head = (
        f"{'phase':<34} {'edge-only':>9} {'edge-only':>9} {'escalated':>9} {'after':>9} "
        f"{'bytes':>8}\n{'':<34} {'clean':>9} {'drifted':>9} {'fraction':>9} {'verdicts':>9} "
        f"{'/frame':>8}\n"
    )
    rows = []
    for key, label in PHASE_LABELS.items():
        if key not in phases:
            continue
        p = phases[key]
        rows.append(
            f"{label:<34} {_num(p['edge_only_accuracy_clean'])} "
            f"{_num(p['edge_only_accuracy_drifted'])} {_num(p['escalated_fraction'])} "
            f"{_num(p['accuracy_after_verdicts'])} {p['uplink_bytes_per_frame']:>8.0f}\n"
        )
    cloud_acc = report["cloud_model_accuracy"]
    lines = [
        head + "".join(rows),
        f"edge model {report['edge_model']}; cloud model {report['cloud_model']}: top-1 "
        f"{cloud_acc['clean']:.4f} clean, {cloud_acc['drifted']:.4f} drifted (held-out frames)",
    ]
    for run in report["training_runs"]:
        lines.append(
            f"round: {run['parent']} -> {run['child'] or '-'}: {run['state']} on "
            f"{run['dataset_size']} verdicts ({run['reason']})"
        )
    for key, judged in report["targets"].items():
        mark = "met" if judged["met"] else "NOT met"
        lines.append(f"{key:<34} {judged['value']!s:>9}  target {judged['target']:<8} {mark}")
    cloud = report.get("after_loop_vs_cloud_only")
    if cloud:
        lines.append(
            f"after the loop vs cloud-only: accuracy {cloud['accuracy_vs_cloud_points']:+.2f} "
            f"points, bytes per frame x{cloud['bytes_ratio']:.3f}"
        )
    return "\n".join(lines)


PHASE_LABELS = {
    "A": "A original scene, parent model",
    "B": "B drifted scene, parent model",
    "C": "C drifted scene, after the loop",
    "cloud-only": "cloud-only, drifted scene",
}


def _num(value: float | None) -> str:
    return f"{value:>9.4f}" if value is not None else f"{'-':>9}"


def timeline(
    snapshot: Snapshot, uplink: list[tuple[float, float]], start: float, bins_s: float = 5.0
) -> list[dict[str, Any]]:
    """Per time bin (seconds since ``start``) over every camera: frames, escalation rate, edge
    and final accuracy, uplink bytes per frame (``uplink``: (time, bytes so far) samples) and the
    newest model version answering."""
    import numpy as np

    bins: dict[int, list[Any]] = defaultdict(list)
    for traffic in snapshot.values():
        for rid, answer in traffic.answers.items():
            verdict = traffic.verdicts.get(rid) if answer.escalated else None
            final = verdict.label if verdict is not None else answer.label
            bins[int((answer.answered_at - start) // bins_s)].append((answer, final))
    times = np.array([t for t, _ in uplink] or [start])
    sent = np.array([b for _, b in uplink] or [0.0])
    out = []
    for index in sorted(bins):
        group = bins[index]
        lo, hi = start + index * bins_s, start + (index + 1) * bins_s
        in_bin = float(np.interp(hi, times, sent) - np.interp(lo, times, sent))
        out.append(
            {
                "t": index * bins_s,
                "frames": len(group),
                "escalated_fraction": sum(a.escalated for a, _ in group) / len(group),
                "edge_accuracy": sum(a.label == a.ground_truth for a, _ in group) / len(group),
                "accuracy_after_verdicts": sum(f == a.ground_truth for a, f in group) / len(group),
                "uplink_bytes_per_frame": in_bin / len(group),
                "model": Counter(a.model_version for a, _ in group).most_common(1)[0][0],
            }
        )
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    """Accuracy, escalation rate and bytes per frame over time, the model version marked."""
    plt = pyplot()
    points = report["timeline"]
    t = [p["t"] for p in points]
    versions = list(dict.fromkeys(p["model"] for p in points))  # in order of appearance
    fig, axes = plt.subplots(4, 1, figsize=(9, 9.5), sharex=True)
    axes[0].plot(t, [p["edge_accuracy"] for p in points], label="edge answer")
    axes[0].plot(t, [p["accuracy_after_verdicts"] for p in points], label="after verdicts")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower left")
    axes[1].plot(t, [p["escalated_fraction"] for p in points], color="tab:red")
    axes[1].set_ylabel("escalated fraction")
    axes[2].plot(t, [p["uplink_bytes_per_frame"] for p in points], color="tab:green")
    axes[2].set_ylabel("uplink bytes / frame")
    axes[3].step(t, [versions.index(p["model"]) for p in points], where="post", color="tab:purple")
    axes[3].set_yticks(range(len(versions)), versions, fontsize=7)
    axes[3].set_ylabel("model (most frames)")
    axes[3].set_xlabel("seconds since the first frame")
    for phase in report["phase_starts"]:
        for ax in axes:
            ax.axvline(phase["t"], color="grey", linestyle="--", linewidth=0.8)
        axes[0].text(
            phase["t"], 1.02, phase["phase"], transform=axes[0].get_xaxis_transform(), fontsize=8
        )
    fig.suptitle("bench loop: a drifted scene, the loop, the new model")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def running_model(agent_dir: Path, factory: Path) -> Path:
    """The model file a camera runs now (its active slot), or its factory model."""
    from edgecascade.edge_agent.slots import ModelSlots

    slots = ModelSlots(agent_dir / "slots")
    active = slots.active
    return slots.model_path(active.slot) if active is not None else factory


def edge_only(model: Path, clean: Path, drifted: Path) -> dict[str, float]:
    """Top-1 of ``model`` through LiteRT on the clean and the drifted held-out frames."""
    from edgecascade.shared.runtime.datasets import LabelledFolder
    from edgecascade.shared.runtime.evaluate import evaluate
    from edgecascade.shared.runtime.runtime import ModelRuntime

    runtime = ModelRuntime.load(model)
    figures = {}
    for name, folder in (("clean", clean), ("drifted", drifted)):
        report = evaluate(runtime, LabelledFolder(folder, runtime.labels), progress_every=10**9)
        figures[name] = round(report.top1_accuracy, 4)
    return figures


def run_entry(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": run["id"],
        "state": run["state"],
        "parent": f"{run['parent_name']}@{run['parent_version']}",
        "child": run["child_version"],
        "dataset_size": run["dataset_size"],
        "reason": run["reason"],
        "metrics": run["metrics"],
        "rollout": run.get("rollout"),
    }


def display(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.name
