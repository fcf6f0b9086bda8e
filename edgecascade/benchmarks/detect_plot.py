"""mAP@0.5 vs bytes uplinked for ``bench detect --plot`` (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecascade.benchmarks.plotting import pyplot


def plot(report: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    pairs = report["pairs"]
    fig, axes = plt.subplots(1, len(pairs), figsize=(7.5 * len(pairs), 5.2), squeeze=False)
    for ax, (name, measured) in zip(axes[0], pairs.items(), strict=True):
        policies = [p for p in measured["policies"] if p["map50"] is not None]
        target = measured["targets"]
        cloud = next(p for p in policies if p["family"] == "cloud-only")
        ax.axhspan(
            100 * cloud["map50"] - target["map50_points"],
            100 * cloud["map50"] + 0.5,
            xmax=target["bytes_ratio"] / 1.05,
            color="tab:green",
            alpha=0.1,
            label=f"target: cloud-only - {target['map50_points']:g} pt at <= "
            f"{target['bytes_ratio']:g} bytes",
        )
        for p in policies:
            marker = {"edge-only": "s", "cloud-only": "D"}.get(p["family"], "o")
            ax.plot(p["bytes_ratio"], 100 * p["map50"], marker=marker, linestyle="")
            ax.annotate(
                p["policy"],
                (p["bytes_ratio"], 100 * p["map50"]),
                textcoords="offset points",
                xytext=(5, -10),
                fontsize=7,
            )
        ax.set_xlim(0, 1.05)
        ax.set_xlabel("bytes uplinked (fraction of cloud-only: results + escalated frames)")
        ax.set_ylabel("mAP@0.5 (%)")
        ax.set_title(f"{name} ({report['mode']}): {measured['set']['frames']} frames")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
