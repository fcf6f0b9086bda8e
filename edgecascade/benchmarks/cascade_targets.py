"""The issue's targets for ``bench cascade``, judged on the measured policies.

- **target**: a cascade policy whose accuracy is at most 0.5 points below cloud-only's while it
  uplinks at most 25 % of cloud-only's bytes;
- **stretch**: cloud-only's accuracy (or better) at 20 % of its bytes or less.

Judged on all the bytes the gateway sent up for the device per frame (results and escalated
frames, ``bytes_ratio``) and, for the frames alone, on ``frame_bytes_ratio``.
"""

from __future__ import annotations

from typing import Any

from edgecascade.cascade_pick import REFERENCES

TARGETS = (
    ("target", 0.5, 0.25),  # (name, accuracy points below cloud-only allowed, bytes ratio)
    ("stretch", 0.0, 0.20),
)


def judge_targets(policies: list[dict[str, Any]], cloud_only: dict[str, Any]) -> dict[str, Any]:
    cascade = [p for p in policies if p["family"] not in REFERENCES and p["accuracy"] is not None]
    out: dict[str, Any] = {"lines": []}
    for name, points, ratio in TARGETS:
        for key in ("bytes_ratio", "frame_bytes_ratio"):
            met = [
                p
                for p in cascade
                if p[key] is not None
                and p[key] <= ratio
                and p["accuracy_vs_cloud_points"] >= -points
            ]
            best = min(met, key=lambda p: p[key]) if met else None
            out[f"{name}_{key}"] = {
                "accuracy_within_points": points,
                "max_ratio": ratio,
                "met": best is not None,
                "met_by": sorted(p["policy"] for p in met),
            }
            what = "all bytes" if key == "bytes_ratio" else "frame bytes"
            head = (
                f"{name}: accuracy >= cloud-only - {points:g} points at <= {ratio:g} of "
                f"cloud-only {what}"
            )
            if best is not None:
                line = (
                    f"{head}: MET by {best['policy']} ({best['accuracy_vs_cloud_points']:+.2f}"
                    f" points, {best[key]:.3f})"
                )
            else:
                line = f"{head}: NOT MET ({_nearest(cascade, key, points, ratio)})"
            out["lines"].append(line)
    return out


def _nearest(cascade: list[dict[str, Any]], key: str, points: float, ratio: float) -> str:
    accurate = [p for p in cascade if p["accuracy_vs_cloud_points"] >= -points]
    cheap = [p for p in cascade if p[key] is not None and p[key] <= ratio]
    parts = []
    if accurate:
        best = min(accurate, key=lambda p: p[key])
        parts.append(f"fewest bytes within {points:g} points: {best['policy']} at {best[key]:.3f}")
    if cheap:
        best = max(cheap, key=lambda p: p["accuracy_vs_cloud_points"])
        parts.append(
            f"most accurate within {ratio:g}: {best['policy']} at "
            f"{best['accuracy_vs_cloud_points']:+.2f} points"
        )
    return "; ".join(parts) or "no cascade policy measured"
