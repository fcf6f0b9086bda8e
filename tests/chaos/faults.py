"""Seeded fault plans: which part dies when, and for how long.

One seed gives one plan (the order of the faults, the pauses between them, how long each part
stays down, which agent and which worker): ``EC_CHAOS_SEED=<seed>`` replays a failed run's plan.
Faults come one at a time: the next begins once the path is whole again (the restarted process
and the gateway reconnected). Timing on a shared machine still varies, so a replay repeats the
faults, not every interleaving of messages with them.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from tests.chaos.topology import Topology

logger = logging.getLogger(__name__)

# Every part of the path the suite kills at least once, and the uplink it cuts.
TARGETS = ("site-broker", "cloud-broker", "gateway", "cloud", "worker", "agent", "uplink")


@dataclass(frozen=True)
class Fault:
    target: str  # one of TARGETS
    victim: str  # the process or link that is hit, e.g. "cam2"
    pause_s: float  # wait this long after the previous fault was repaired
    down_s: float  # how long it stays dead (or the link cut)

    def describe(self) -> str:
        action = "cut" if self.target == "uplink" else "SIGKILL"
        return f"{action} {self.victim} for {self.down_s:.1f}s after {self.pause_s:.1f}s"


def plan(seed: int, topology: Topology, rounds: int = 1) -> list[Fault]:
    """Each target once per round, in a seeded order, with seeded pauses and downtimes."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    for _ in range(rounds):
        order = list(TARGETS)
        rng.shuffle(order)
        victims = {
            "worker": rng.choice([w.name for w in topology.workers]),
            "agent": rng.choice([a.name for a in topology.agents]),
        }
        faults += [
            Fault(
                target=target,
                victim=victims.get(target, target),
                pause_s=round(rng.uniform(1.0, 4.0), 2),
                down_s=round(
                    rng.uniform(3.0, 8.0) if target == "uplink" else rng.uniform(0.3, 3.0), 2
                ),
            )
            for target in order
        ]
    return faults


def inject(fault: Fault, topology: Topology) -> str:
    """Break the part, wait ``down_s``, bring it back (same port, config and data directory).

    Returns the fault with its wall-clock times, to line up with the components' logs.
    """
    logger.info("chaos: %s", fault.describe())
    broken = time.time()
    _break_and_repair(fault, topology)
    return f"{fault.describe()} [{_clock(broken)} - {_clock(time.time())}]"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


# The gateway's MQTT connections each fault breaks: the repair is done when they are back.
GATEWAY_LINKS_BROKEN = {"site-broker": 1, "cloud-broker": 1, "uplink": 1, "gateway": 2}


def _break_and_repair(fault: Fault, topology: Topology) -> None:
    """One fault at a time: the next one begins only once the path is whole again."""
    gateway = topology.gateway
    gateway_before = gateway.connections()
    _break_and_restart(fault, topology)
    gateway.wait_connections(gateway_before + GATEWAY_LINKS_BROKEN.get(fault.target, 0))


def _break_and_restart(fault: Fault, topology: Topology) -> None:
    if fault.target == "uplink":
        topology.uplink.cut()
        time.sleep(fault.down_s)  # the outage lasts this long, on purpose
        topology.uplink.restore()
    elif fault.target in ("site-broker", "cloud-broker"):
        broker = topology.site_broker if fault.target == "site-broker" else topology.cloud_broker
        broker.kill()
        time.sleep(fault.down_s)  # the outage lasts this long, on purpose
        broker.start()
    else:
        service = {s.name: s for s in topology.services()}[fault.victim]
        before = service.connections()
        service.kill()
        time.sleep(fault.down_s)  # the outage lasts this long, on purpose
        service.start()
        if service is topology.cloud:
            topology.wait_cloud()
        elif service is not topology.gateway:  # an agent or a worker: one connection
            service.wait_connections(before + 1)
