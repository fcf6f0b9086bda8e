"""``edgecascade demo --chaos``: the demo's parts killed and restarted while the cameras run.

A seeded plan (:func:`chaos_plan`) SIGKILLs each part once per round, in a shuffled order: the site
broker, the cloud broker, the gateway, the cloud service, the worker and one camera. The
:class:`ChaosMonkey` thread applies it one fault at a time: it waits a few seconds, kills the part
the way a crash or a power cut would, keeps it down for a moment, and starts it again with the same
command, port and data directory, as systemd's ``Restart=always`` would. Every step is a progress
line. A killed camera comes back with the frames it still owes (its outbox's count of accepted
results says how many it made), and sends what its outbox kept.

*Accepted* means committed to a camera's disk outbox (``queued.result`` in its ``counters``
table, counted in the same transaction as the row), so the demo's closing check is exact: every
result a camera accepted is stored, once (the store's primary key is the result's ``msg_id``). A
frame a camera was classifying when it was killed was never accepted.
"""

from __future__ import annotations

import logging
import random
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgecascade.demo import Demo, DemoPlan

logger = logging.getLogger(__name__)

TARGETS = ("site-broker", "cloud-broker", "gateway", "cloud", "worker", "agent")


@dataclass(frozen=True)
class Fault:
    target: str  # one of TARGETS
    victim: str  # the process hit: the target's name, or a camera's
    pause_s: float  # after the previous fault was repaired
    down_s: float  # how long it stays dead

    def describe(self) -> str:
        return f"SIGKILL {self.victim}, down for {self.down_s:.1f}s"


def chaos_plan(seed: int, cameras: list[str], rounds: int = 1) -> list[Fault]:
    """Every target once per round, in a seeded order, with seeded pauses and downtimes."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    for _ in range(rounds):
        order = list(TARGETS)
        rng.shuffle(order)
        camera = rng.choice(cameras)
        faults += [
            Fault(
                target=target,
                victim=camera if target == "agent" else target,
                pause_s=round(rng.uniform(2.0, 4.0), 1),
                down_s=round(rng.uniform(1.0, 3.0), 1),
            )
            for target in order
        ]
    return faults


def accepted(outbox: Path, klass: str = "result") -> int:
    """How many messages of ``klass`` a camera's outbox accepted (0 before it has one)."""
    if not outbox.exists():
        return 0
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (f"queued.{klass}",))
        found = row.fetchone()
    except sqlite3.OperationalError:  # created, no table yet
        return 0
    finally:
        db.close()
    return int(found[0]) if found else 0


@dataclass
class Part:
    """How the monkey breaks and repairs one part."""

    kill: Callable[[], None]
    restart: Callable[[], None]


class ChaosMonkey:
    """Applies the faults one at a time, driven by :meth:`tick` from the demo's main thread:
    the processes it restarts must be children of that thread, since a child's
    ``PR_SET_PDEATHSIG`` fires when the *thread* that started it ends. ``down`` names the part
    it holds down right now (the demo's supervisor leaves that one alone)."""

    def __init__(
        self,
        faults: list[Fault],
        parts: Callable[[Fault], Part],
        say: Callable[[str], None],
        started: float,
    ) -> None:
        self.faults = list(faults)
        self._parts = parts
        self._say = say
        self._t0 = started
        self.down: str | None = None
        self.applied: list[str] = []
        self._due = time.monotonic() + (faults[0].pause_s if faults else 0.0)
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self.faults) and self.down is None

    def _line(self, text: str) -> None:
        self._say(f"[{time.monotonic() - self._t0:5.1f}s] chaos: {text}")

    def tick(self) -> None:
        """Break the next part or repair the broken one, when its time has come."""
        now = time.monotonic()
        if self.done or now < self._due:
            return
        fault = self.faults[self._next]
        if self.down is None:
            self.down = fault.victim
            self._line(fault.describe())
            self._parts(fault).kill()
            self._due = time.monotonic() + fault.down_s
            return
        self._parts(fault).restart()
        self.down = None
        self._line(f"{fault.victim} restarted")
        self.applied.append(fault.describe())
        self._next += 1
        if self._next < len(self.faults):
            self._due = time.monotonic() + self.faults[self._next].pause_s


SERVICES = ("cloud", "worker", "gateway")


class ChaosDemo(Demo):
    """A :class:`~edgecascade.demo.Demo` whose parts a :class:`ChaosMonkey` kills and restarts,
    with a supervisor that restarts any service that dies on its own."""

    def __init__(
        self, plan: DemoPlan, seed: int, rounds: int, spread_s: float | None = None
    ) -> None:
        """``spread_s``: stretch the pauses so the faults span that long (a soak), instead of
        following each other within seconds."""
        super().__init__(plan)
        self.seed, self.rounds, self.spread_s = seed, rounds, spread_s
        self.monkey: ChaosMonkey | None = None
        self.supervised = 0  # services restarted after dying on their own

    def start(self) -> list[str]:
        agents = super().start()
        faults = chaos_plan(self.seed, agents, self.rounds)
        if self.spread_s and faults:
            busy = sum(f.pause_s + f.down_s for f in faults)
            extra = max(0.0, self.spread_s - busy) / len(faults)
            faults = [replace(f, pause_s=round(f.pause_s + extra, 1)) for f in faults]
        self.say(f"chaos: seed {self.seed}, {len(faults)} faults, one at a time")
        self.monkey = ChaosMonkey(faults, self._part, self.say, self.started)
        return agents

    def _tick(self) -> None:
        if self.monkey is not None:
            self.monkey.tick()

    def _part(self, fault: Fault) -> Part:
        if fault.target in ("site-broker", "cloud-broker"):
            broker = self.brokers[0 if fault.target == "site-broker" else 1]
            return Part(broker.kill, broker.start)
        if fault.target == "agent":
            return Part(lambda: self.group.kill(fault.victim), lambda: self._revive(fault))
        return Part(
            lambda: self.group.kill(fault.victim),
            lambda: self._respawn(fault.victim),
        )

    def _respawn(self, name: str) -> None:
        self.group.respawn(name)

    def _revive(self, fault: Fault) -> None:
        """The camera again, owing the frames it has not accepted yet (at least one, so
        it starts, sends what its outbox kept and leaves)."""
        done = accepted(self.plan.workdir / "agents" / fault.victim / "outbox.db")
        owed = max(1, self.plan.frames_per_device - done)
        self.group.respawn(fault.victim, self._cli(self._agent_args(fault.victim, owed)))

    def _cli(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "edgecascade", *args]

    def _running(self, agent: str) -> bool:
        held = self.monkey is not None and self.monkey.down == agent
        return held or super()._running(agent)

    def _busy(self) -> bool:
        return self.monkey is not None and not self.monkey.done

    def _agent_failed(self, name: str, code: int) -> None:
        if code != -signal.SIGKILL:  # the monkey's SIGKILL is the plan, not a failure
            super()._agent_failed(name, code)

    def _check_services(self) -> None:
        """A supervisor's job: restart a service that died, unless the monkey holds it."""
        if self.monkey is None:  # starting: a service that dies now is a real failure
            super()._check_services()
            return
        for name in SERVICES:
            proc = self.group.process(name)
            if name != self.monkey.down and proc.poll() is not None:
                self.supervised += 1
                self.say(f"supervisor: {name} exited with {proc.returncode}; restarting it")
                self.group.respawn(name)

    def _finish(self, agents: list[str]) -> dict[str, int]:
        summary = super()._finish(agents)
        del summary["frames"]  # a camera's stats count its last run only
        summary["faults injected"] = len(self.monkey.applied) if self.monkey else 0
        summary["restarts by the supervisor"] = self.supervised
        return summary
