"""``edgecascade bench gateway``'s flooder scenario: one device floods, its neighbours' latency.

A gateway of its own (a fresh outbox) runs with a per-device result budget of
``--flooder-budget`` results/s (burst: one second of it). The paced run of the other phases is
made three times by the same neighbour devices, each well within the budget:

- **quiet**: alone;
- **control**: while one more device, ``flooder`` (a process of its own,
  :mod:`.flood_device`), publishes results at ``--flooder-times`` its budget (0: as fast as the
  site broker acknowledges them) on another site's topic, which the gateway does not subscribe
  to: the same load on the machine and the broker (everything shares the cores here; a real
  flooder is a machine of its own), none on the gateway;
- **flood**: the same flood on the gateway's own site.

Reported: the neighbours' p50/p99 publish-to-cloud latency in each and the ratios to quiet (the
same run; ``flood`` over ``quiet`` is the target's measure, ``flood`` over ``control`` what the
gateway's own handling of the flood adds), what the neighbours lost or got twice, the flooder's
rate as a multiple of its budget, and how many of its results went up.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import psutil

from edgecascade.benchmarks.cascade_tap import counted_gateway_env
from edgecascade.benchmarks.flood_device import FloodDevice
from edgecascade.benchmarks.gateway import (
    SITE,
    _messages,
    _publish,
    _Subscriber,
    wait_gateway_online,
)


def _paced(
    port: int,
    sub: _Subscriber,
    args: argparse.Namespace,
    flooder: FloodDevice | None,
    gateway: psutil.Process,
) -> dict[str, Any]:
    """The paced run by the neighbours (with the flooder publishing meanwhile, when given)."""
    import numpy as np

    messages = _messages(args.paced_results, args.devices)
    sub.reset(0)  # arrivals are counted for the neighbours' ids only, below
    cpu = _cpu_s(gateway)
    if flooder is not None:
        flooder.start()
    sent = _publish(port, messages, args.paced_rate)
    if flooder is not None:
        flooder.stop()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not all(i in sub.arrived for i in sent):
        time.sleep(0.1)
    time.sleep(0.5)  # duplicates, if any, arrive after the last new id
    cpu = _cpu_s(gateway) - cpu
    arrived = dict(sub.arrived)
    latencies = np.array([(arrived[i] - t) * 1000 for i, t in sent.items() if i in arrived])
    return {
        "results": len(messages),
        "arrived": sum(1 for i in sent if i in arrived),
        "lost": sum(1 for i in sent if i not in arrived),
        "duplicates": sub.duplicates,  # of anyone's: the flooder's too would be an error
        "latency_ms_p50": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "flooder_arrived": sum(1 for i in flooder.ids if i in arrived) if flooder else 0,
        "gateway_cpu_s": cpu,  # the gateway process's, all its threads
        "flooder_cpu_s": flooder.cpu_s if flooder else 0.0,  # with its mosquitto_pub
    }


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def flooder_path(
    site_port: int, cloud_port: int, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Quiet, then flood, through a gateway that limits every device to the flooder budget."""
    from edgecascade.processes import ProcessGroup

    budget = args.flooder_budget
    group = ProcessGroup(work / "logs-flooder")
    env = {
        **counted_gateway_env(compress=False),
        "EC_GATEWAY_RATE_LIMITS__RESULT__MESSAGES_PER_S": f"{budget:g}",
        "EC_GATEWAY_RATE_LIMITS__RESULT__BURST_MESSAGES": str(max(1, round(budget))),
    }
    argv = [
        "gateway",
        "--site",
        SITE,
        "--data-dir",
        str(work / "gateway-flooder"),
        "--site-mqtt-port",
        str(site_port),
        "--cloud-mqtt-port",
        str(cloud_port),
        "--batch-linger-ms",
        str(args.linger_ms),
    ]
    sub = _Subscriber(cloud_port, "ec/v1/#", "bench-cloud-flooder")
    try:
        gateway = psutil.Process(group.spawn_cli("gateway", *argv, env=env).pid)
        wait_gateway_online(site_port, args.timeout)
        phases = {"quiet": _paced(site_port, sub, args, None, gateway)}
        for phase, site in (("control", f"{SITE}-elsewhere"), ("flood", SITE)):
            flooder = FloodDevice(
                site_port, site, budget * args.flooder_times, work / f"flooder-{phase}.json"
            )
            phases[phase] = _paced(site_port, sub, args, flooder, gateway)
            rate = len(flooder.ids) / flooder.seconds if flooder.seconds else 0.0
            phases[phase]["flooder_sent"] = len(flooder.ids)
            phases[phase]["flooder_results_per_s"] = rate
            phases[phase]["flooder_vs_budget"] = rate / budget
    finally:
        sub.close()
        group.stop_all()
    return {"budget_results_per_s": budget, **phases}
