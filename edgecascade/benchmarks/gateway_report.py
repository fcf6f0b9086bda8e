"""What ``edgecascade bench gateway`` reports: the raw broker path and the gateway path side by
side, the gateway's throughput against the raw path's and the latency it adds."""

from __future__ import annotations

import argparse
from typing import Any

from edgecascade.benchmarks.table import format_table

HEADERS = [
    "path",
    "flood results/s",
    "drain results/s",
    "per msg (flood)",
    "per msg (paced)",
    "paced p50 ms",
    "paced p99 ms",
    "lost",
    "duplicates",
]


def gateway_report(
    args: argparse.Namespace,
    raw: dict[str, dict[str, Any]],
    gw: dict[str, dict[str, Any]],
    flooder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    def ratio(phase: str) -> float:
        base = raw[phase]["results_per_s"]
        return float(gw[phase]["results_per_s"] / base) if base else 0.0

    added: dict[str, float | None] = {}
    for q in ("p50", "p99"):
        through, bare = gw["paced"][f"latency_ms_{q}"], raw["paced"][f"latency_ms_{q}"]
        added[q] = through - bare if through is not None and bare is not None else None
    table = _table(raw, gw) + (
        f"\ngateway vs raw: flood {ratio('flood'):.3f}, drain {ratio('drain'):.3f}; latency "
        f"added at {args.paced_rate:g} results/s: p50 {_ms(added['p50'])}, p99 "
        f"{_ms(added['p99'])} (batch linger {args.linger_ms:g} ms)"
    )
    everything = [*raw.values(), *gw.values()]
    noisy: dict[str, Any] = {}
    if flooder is not None:
        noisy = _flooder_figures(flooder)
        table += "\n" + noisy.pop("line")
        everything += [flooder["quiet"], flooder["control"], flooder["flood"]]
    return {
        "results": args.results,
        "paced_results": args.paced_results,
        "paced_rate": args.paced_rate,
        "devices": args.devices,
        "linger_ms": args.linger_ms,
        "raw": raw,
        "gateway": gw,
        "gateway_vs_raw_throughput_ratio": ratio("flood"),
        "gateway_vs_raw_drain_ratio": ratio("drain"),
        "results_per_cloud_message_flood": gw["flood"]["results_per_message"],
        "results_per_cloud_message_paced": gw["paced"]["results_per_message"],
        "added_latency_ms_p50": added["p50"],
        "added_latency_ms_p99": added["p99"],
        "lost": sum(r["lost"] for r in everything),
        "duplicates": sum(r["duplicates"] for r in everything),
        **noisy,
        "table": table,
    }


def _flooder_figures(flooder: dict[str, Any]) -> dict[str, Any]:
    """The flooder scenario's ratios (flood over quiet, the neighbours' latency) and its line."""
    quiet, control, flood = flooder["quiet"], flooder["control"], flooder["flood"]

    def ratio(q: str, base: dict[str, Any]) -> float | None:
        with_flood, without = flood[f"latency_ms_{q}"], base[f"latency_ms_{q}"]
        return float(with_flood / without) if with_flood is not None and without else None

    line = (
        f"flooder at {flood['flooder_results_per_s']:.0f} results/s "
        f"({flood['flooder_vs_budget']:.0f}x its {flooder['budget_results_per_s']:g}/s budget; "
        f"{flood['flooder_arrived']} of its {flood['flooder_sent']} went up): neighbours' p99 "
        f"{_ms(flood['latency_ms_p99'])}, alone {_ms(quiet['latency_ms_p99'])} (ratio "
        f"{_ratio(ratio('p99', quiet))}, p50 {_ratio(ratio('p50', quiet))}), beside the same "
        f"flood on another site {_ms(control['latency_ms_p99'])} (ratio "
        f"{_ratio(ratio('p99', control))}); neighbours lost "
        f"{quiet['lost'] + control['lost'] + flood['lost']}"
    )
    # What the flood cost the gateway: its CPU beyond the control phase's, per refused message.
    refused = flood["flooder_sent"] - flood["flooder_arrived"]
    extra_cpu = flood["gateway_cpu_s"] - control["gateway_cpu_s"]
    per_refused = extra_cpu / refused * 1e6 if refused > 0 else None
    line += (
        f"\ngateway CPU s quiet/control/flood {quiet['gateway_cpu_s']:.2f}/"
        f"{control['gateway_cpu_s']:.2f}/{flood['gateway_cpu_s']:.2f} "
        f"({'n/a' if per_refused is None else f'{per_refused:.0f}'} us a refused message); "
        f"the flooder's own CPU {flood['flooder_cpu_s']:.2f} s"
    )
    return {
        "flooder_gateway_cpu_us_per_refused": per_refused,
        "flooder": flooder,
        "flooder_p50_ratio": ratio("p50", quiet),
        "flooder_p99_ratio": ratio("p99", quiet),
        "flooder_vs_control_p99_ratio": ratio("p99", control),
        "flooder_vs_budget": flood["flooder_vs_budget"],
        "line": line,
    }


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _table(raw: dict[str, dict[str, Any]], gw: dict[str, dict[str, Any]]) -> str:
    rows = [
        [
            name,
            runs["flood"]["results_per_s"],
            runs["drain"]["results_per_s"],
            runs["flood"]["results_per_message"],
            runs["paced"]["results_per_message"],
            runs["paced"]["latency_ms_p50"],
            runs["paced"]["latency_ms_p99"],
            sum(r["lost"] for r in runs.values()),
            sum(r["duplicates"] for r in runs.values()),
        ]
        for name, runs in (("raw paho -> mosquitto -> paho", raw), ("site -> gateway -> cloud", gw))
    ]
    return format_table(HEADERS, rows)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
