"""What ``edgecascade bench load`` reports: every step, the highest rate held and why the run
stopped, as JSON figures and a table."""

from __future__ import annotations

import argparse
from typing import Any

from edgecascade.benchmarks.table import format_table

HEADERS = [
    "fps/device",
    "offered/s",
    "published/s",
    "offered",
    "delivered",
    "lost",
    "p50 ms",
    "p99 ms",
    "held",
]


def load_report(args: argparse.Namespace, steps: list[dict[str, Any]]) -> dict[str, Any]:
    held = [s for s in steps if s["held"] and not s["publisher_limited"]]
    best = max(held, key=lambda s: s["offered_per_s"]) if held else None
    stopped = _stopped(steps[-1], args.max_p99_ms)
    held_text = (
        f"{best['offered_per_s']:g} results/s ({best['fps_per_device']:g} fps x "
        f"{args.devices} devices)"
        if best
        else "none"
    )
    table = _table(steps) + (
        f"\n{args.devices} simulated devices (result publishers, no model) -> site broker -> "
        f"gateway -> cloud broker -> cloud ingest -> {args.database}"
        f"\nhighest rate held with zero loss and p99 <= {args.max_p99_ms:g} ms: {held_text}"
        f"\nstopped: {stopped}"
    )
    return {
        "devices": args.devices,
        "database": args.database,
        "step_seconds": args.step_seconds,
        "drain_seconds": args.drain_seconds,
        "max_p99_ms": args.max_p99_ms,
        "linger_ms": args.linger_ms,
        "steps": steps,
        "highest_rate_held_per_s": best["offered_per_s"] if best else 0.0,
        "highest_fps_per_device_held": best["fps_per_device"] if best else 0.0,
        "lost_at_highest_rate_held": best["lost"] if best else None,
        "stopped": stopped,
        "table": table,
    }


def _stopped(last: dict[str, Any], max_p99_ms: float) -> str:
    """Why the last step was the last."""
    if last["publisher_limited"]:
        return (
            f"the publisher held {last['published_per_s']:.0f} of "
            f"{last['offered_per_s']:g} results/s: it was the limit, not the path"
        )
    if not last["held"]:
        return (
            f"{last['offered_per_s']:g} results/s broke: lost {last['lost']}, p99 "
            f"{_ms(last['latency_ms_p99'])} (bound {max_p99_ms:g} ms)"
        )
    return "every step held; raise --fps to find the limit"


def _table(steps: list[dict[str, Any]]) -> str:
    return format_table(
        HEADERS,
        [
            [
                s["fps_per_device"],
                s["offered_per_s"],
                s["published_per_s"],
                s["offered"],
                s["delivered"],
                s["lost"],
                s["latency_ms_p50"],
                s["latency_ms_p99"],
                "yes" if s["held"] and not s["publisher_limited"] else "no",
            ]
            for s in steps
        ],
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"
