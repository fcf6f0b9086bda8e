"""The table ``bench cascade`` prints: one row per policy, then the fit and the targets."""

from __future__ import annotations

from typing import Any

from edgecascade.benchmarks.table import format_table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _ms(value: dict[str, float | None]) -> str:
    p50 = value["p50"]
    return "-" if p50 is None else f"{p50:.1f}"


def format_report(measured: dict[str, Any]) -> str:
    headers = [
        "policy",
        "escalated %",
        "accuracy %",
        "vs cloud pts",
        "uplink B/frame",
        "bytes ratio",
        "frame bytes ratio",
        "first p50 ms",
        "final p50 ms",
        "final p95 ms",
        "verdicts missing",
    ]
    rows = []
    for p in measured["policies"]:
        vs = p["accuracy_vs_cloud_points"]
        rows.append(
            [
                p["policy"],
                _pct(p["escalated_fraction"]),
                _pct(p["accuracy"]),
                "-" if vs is None else f"{vs:+.2f}",
                f"{p['uplink_bytes_per_frame']:.0f}",
                "-" if p["bytes_ratio"] is None else f"{p['bytes_ratio']:.3f}",
                "-" if p["frame_bytes_ratio"] is None else f"{p['frame_bytes_ratio']:.3f}",
                _ms(p["first_answer_ms"]),
                _ms(p["final_answer_ms"]),
                "-"
                if p["final_answer_ms"]["p95"] is None
                else f"{p['final_answer_ms']['p95']:.1f}",
                p["verdicts_missing"],
            ]
        )
    lines = [format_table(headers, rows)]
    fit = measured["temperature_fit"]
    if fit is not None:
        lines.append(
            f"calibrated: temperature {fit['temperature']:g} fitted on "
            f"{fit['samples']} cloud verdicts (NLL {fit['nll_before']:.3f} -> "
            f"{fit['nll_after']:.3f})"
        )
    lines.extend(measured["targets"]["lines"])
    return "\n".join(lines)
