"""``edgecascade demo --chaos``: the fault plan, the monkey's steps, and the demo surviving it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from edgecascade.demo_chaos import TARGETS, ChaosMonkey, Fault, Part, chaos_plan
from tests.utils.paths import REPO


def test_a_plan_hits_every_part_once_per_round_and_replays_from_its_seed() -> None:
    plan = chaos_plan(7, ["cam1", "cam2"], rounds=2)
    assert len(plan) == 2 * len(TARGETS)
    for round_ in (plan[:6], plan[6:]):
        assert sorted(f.target for f in round_) == sorted(TARGETS)
    assert {f.victim for f in plan if f.target == "agent"} <= {"cam1", "cam2"}
    assert chaos_plan(7, ["cam1", "cam2"], rounds=2) == plan
    assert chaos_plan(8, ["cam1", "cam2"], rounds=2) != plan


def test_the_monkey_breaks_then_repairs_one_part_at_a_time() -> None:
    steps: list[str] = []
    lines: list[str] = []

    def part(fault: Fault) -> Part:
        return Part(
            lambda: steps.append(f"kill {fault.victim}"),
            lambda: steps.append(f"start {fault.victim}"),
        )

    faults = [Fault("gateway", "gateway", 0.0, 0.0), Fault("agent", "cam2", 0.0, 0.0)]
    monkey = ChaosMonkey(faults, part, lines.append, started=0.0)
    monkey.tick()
    assert (steps, monkey.down) == (["kill gateway"], "gateway")
    for _ in range(3):
        monkey.tick()
    assert steps == ["kill gateway", "start gateway", "kill cam2", "start cam2"]
    assert monkey.done and monkey.down is None and len(monkey.applied) == 2
    assert any("SIGKILL cam2" in line for line in lines)


@pytest.mark.e2e
def test_the_demo_under_chaos_stores_every_accepted_result(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    argv = ["demo", "--chaos", "--chaos-seed", "7", "--devices", "2", "--duration", "30"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgecascade", *argv, "--fps", "5", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=420,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    for victim in ("site-broker", "cloud-broker", "gateway", "cloud", "worker"):
        assert f"chaos: SIGKILL {victim}," in out and f"chaos: {victim} restarted" in out
    assert "chaos: SIGKILL cam" in out
    assert "every result stored" in out
    summary = dict(
        line.strip().rsplit(None, 1)
        for line in out.split("summary", 1)[1].splitlines()
        if line.strip() and not line.strip().startswith(("->", "logs"))
    )
    assert summary["faults injected"] == "6"
    assert summary["results"] == summary["stored"] and int(summary["results"]) >= 300
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(workdir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
