"""Accuracy vs bytes uplinked, one panel per model pair, as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecascade.benchmarks.cascade_targets import TARGETS
from edgecascade.benchmarks.plotting import pyplot

MARKERS = {
    "edge-only": "s",
    "cloud-only": "D",
    "threshold": "o",
    "margin": "^",
    "entropy": "v",
    "calibrated": "P",
    "budget": "X",
    "cooldown": "*",
}


def plot(report: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    pairs = report["pairs"]
    fig, axes = plt.subplots(1, len(pairs), figsize=(7.5 * len(pairs), 5.2), squeeze=False)
    for ax, (name, measured) in zip(axes[0], pairs.items(), strict=True):
        _panel(ax, name, measured)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(ax: Any, name: str, measured: dict[str, Any]) -> None:
    policies = [p for p in measured["policies"] if p["accuracy"] is not None]
    cloud = next(p for p in policies if p["family"] == "cloud-only")
    _, points, ratio = TARGETS[0]
    ax.axhspan(
        100 * cloud["accuracy"] - points,
        100 * max(p["accuracy"] for p in policies) + 0.3,
        xmax=ratio / 1.05,
        color="tab:green",
        alpha=0.08,
        label=f"target: >= cloud-only - {points:g} pts at <= {ratio:g} bytes",
    )
    for family, marker in MARKERS.items():
        members = sorted(
            (p for p in policies if p["family"] == family), key=lambda p: p["bytes_ratio"]
        )
        if not members:
            continue
        xs = [p["bytes_ratio"] for p in members]
        ys = [100 * p["accuracy"] for p in members]
        size = 90 if family in ("edge-only", "cloud-only") else 55
        ax.plot(
            xs,
            ys,
            marker=marker,
            markersize=size**0.5 * 1.2,
            linestyle="-" if len(members) > 1 else "",
            label=family,
        )
        if family in ("edge-only", "cloud-only"):
            ax.annotate(
                family, (xs[0], ys[0]), textcoords="offset points", xytext=(6, -12), fontsize=8
            )
    ax.axhline(100 * cloud["accuracy"], color="tab:orange", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("bytes uplinked (fraction of cloud-only: results + escalated frames)")
    ax.set_ylabel("accuracy after verdicts (%)")
    ax.set_title(f"{name}: {measured['frames']} labelled frames, {measured['fps']:g} fps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
