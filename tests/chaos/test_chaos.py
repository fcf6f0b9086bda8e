"""Chaos: frames from several cameras through the real path while every part of it is killed.

Agents -> site broker -> gateway -> (uplink proxy) -> cloud broker -> cloud ingest + workers ->
PostgreSQL. While the agents run, a seeded plan SIGKILLs and restarts the site broker, the cloud
broker, the gateway, the cloud service (its ingest), a worker and an agent, and cuts the uplink
for a few seconds. Then the agents are stopped (they leave once their outbox is empty) and the
store must hold exactly what the agents accepted.

*Accepted* means committed to an agent's disk outbox: ``Outbox.put`` counts ``queued.<class>``
in the same transaction as the row, so the agent's ``counters`` table is the exact record of
what it accepted, including rows committed an instant before a SIGKILL. A frame an agent was
classifying when it was killed was never accepted and may be lost; nothing accepted may be.

The seed is logged (and in every assertion message); ``EC_CHAOS_SEED=<seed>`` replays the plan.
``EC_CHAOS_ROUNDS=<n>`` kills every part n times (a longer soak; 1 by default, for CI).
``EC_CHAOS_REPORT=<file>`` writes the run's figures as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.faults import TARGETS, inject, plan
from tests.chaos.topology import SITE, Topology
from tests.utils.mqtt import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.postgres]

logger = logging.getLogger(__name__)

AGENTS = 3
WORKERS = 2
FPS = 10.0
WARMUP_S = 3.0  # frames flow before the first fault
SETTLE_S = 3.0  # and after the last repair, before the agents are stopped
CLASSES = ("result", "escalation")


@pytest.fixture
def chaos_db(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database: the production store."""
    from edgecascade.postgres import scratch_database

    with scratch_database(pg_server_url, "ec_chaos_") as url:
        yield url


def agent_outbox(path: Path) -> dict[str, int]:
    """The agent's own record: counters (accepted, sent, dropped...) and rows still queued."""
    db = sqlite3.connect(path)
    try:
        figures = dict(db.execute("SELECT name, value FROM counters").fetchall())
        # Rows kept for replay after their PUBACK are marked sent; the others still wait.
        figures["still_queued"] = db.execute(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
        ).fetchone()[0]
    finally:
        db.close()
    return figures


def queued(figures: dict[str, int], klass: str) -> int:
    """Rows an outbox accepted of ``klass``; audit samples (class audit) are escalations too."""
    classes = (klass, "audit") if klass == "escalation" else (klass,)
    return sum(figures.get(f"queued.{k}", 0) for k in classes)


def stored(url: str) -> dict[str, Any]:
    """Rows per device and the cross-checks, straight from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    queries = {
        "result": "SELECT device_id, count(*) FROM results WHERE site_id = :site GROUP BY 1",
        "escalation": "SELECT device_id, count(*) FROM escalations WHERE site_id = :site"
        " GROUP BY 1",
        "verdict": "SELECT device_id, count(*) FROM verdicts WHERE site_id = :site GROUP BY 1",
    }
    checks = {
        "escalations_without_verdict": "SELECT count(*) FROM escalations e LEFT JOIN verdicts v"
        " ON v.escalation_id = e.msg_id WHERE v.escalation_id IS NULL",
        "verdicts_without_escalation": "SELECT count(*) FROM verdicts v LEFT JOIN escalations e"
        " ON e.msg_id = v.escalation_id WHERE e.msg_id IS NULL",
        "escalations_without_result": "SELECT count(*) FROM escalations e LEFT JOIN results r"
        " ON r.msg_id = e.result_id WHERE r.msg_id IS NULL",
    }
    try:
        with engine.connect() as conn:
            out: dict[str, Any] = {
                kind: dict(conn.execute(text(sql), {"site": SITE}).all())
                for kind, sql in queries.items()
            }
            out.update({name: conn.execute(text(sql)).scalar_one() for name, sql in checks.items()})
    finally:
        engine.dispose()
    return out


def positive_int(name: str, default: int) -> int:
    """An optional positive integer from the environment, refused by name when malformed."""
    given = os.environ.get(name, "").strip()
    if not given:
        return default
    if not given.isdigit() or int(given) < 1:
        raise pytest.UsageError(f"{name} must be a positive integer, got {given!r}")
    return int(given)


def chaos_seed() -> int:
    """``EC_CHAOS_SEED`` when set (a replay), else a fresh random seed."""
    given = os.environ.get("EC_CHAOS_SEED", "").strip()
    if not given:
        return random.SystemRandom().randrange(1, 2**31)
    try:
        return int(given)
    except ValueError:
        raise pytest.UsageError(f"EC_CHAOS_SEED must be an integer, got {given!r}") from None


def without_verdict(url: str) -> str:
    """When and from whom the escalations that got no verdict came (a failure's first clue)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    sql = (
        "SELECT e.device_id, e.frame_id, e.captured_at, e.received_at FROM escalations e"
        " LEFT JOIN verdicts v ON v.escalation_id = e.msg_id WHERE v.escalation_id IS NULL"
        " ORDER BY e.received_at"
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(sql)).all()
    finally:
        engine.dispose()
    return "\n".join(
        f"  {device} {frame}: captured {time.strftime('%H:%M:%S', time.localtime(captured))}"
        f".{int(captured % 1 * 1000):03d}, stored {time.strftime('%H:%M:%S', time.localtime(got))}"
        f".{int(got % 1 * 1000):03d}"
        for device, frame, captured, got in rows
    )


def test_nothing_accepted_is_lost_or_doubled_while_every_part_is_killed(
    tmp_path: Path, chaos_db: str
) -> None:
    seed = chaos_seed()
    logger.warning("chaos seed %d (replay with EC_CHAOS_SEED=%d)", seed, seed)
    topology = Topology(tmp_path, chaos_db, agents=AGENTS, workers=WORKERS, fps=FPS)
    rounds = positive_int("EC_CHAOS_ROUNDS", 1)
    faults = plan(seed, topology, rounds)
    story = f"seed {seed}: " + "; ".join(f.describe() for f in faults)
    timeline: list[str] = []
    started = time.monotonic()
    try:
        topology.start()
        # The schedule is time on purpose: traffic flows for a while before, between and after
        # the faults (nothing is asserted after these sleeps; the waits below are for events).
        time.sleep(WARMUP_S)
        for fault in faults:
            time.sleep(fault.pause_s)
            timeline.append(inject(fault, topology))
        time.sleep(SETTLE_S)
        for agent in topology.agents:  # SIGTERM: finish the frame, drain the outbox, leave
            assert agent.proc is not None
            code = topology.group.stop(agent.proc, timeout=240)
            assert code == 0, f"{story}\n{agent.name} exited with {code}\n{agent.log_tail()}"
        accepted = {
            a.name: agent_outbox(topology.agent_dir(a.name) / "outbox.db") for a in topology.agents
        }
        # Where a loss happened: what the gateway accepted (de-duplicated) lies between the two.
        gateway = agent_outbox(tmp_path / "gateway" / "outbox.db")
        expected = {k: {n: queued(f, k) for n, f in accepted.items()} for k in CLASSES}

        def complete() -> bool:
            now = stored(chaos_db)
            return all(now[k] == expected[k] for k in CLASSES) and (
                now["escalations_without_verdict"] == 0
            )

        wait_until(complete, timeout=120, step=1.0)
        final = stored(chaos_db)
        for service in (topology.cloud, *topology.workers, topology.gateway):
            assert service.running, f"{story}\n{service.name} died\n{service.log_tail()}"
    finally:
        topology.stop()
    seconds = time.monotonic() - started
    report = summarize(
        seed, faults_injected=len(faults), accepted=accepted, final=final, seconds=seconds
    )
    report.update({f"gateway_accepted_{k}s": queued(gateway, k) for k in CLASSES})
    logger.warning("chaos: %s", json.dumps(report))
    if path := os.environ.get("EC_CHAOS_REPORT"):
        figures = {**report, "plan": story, "timeline": timeline}
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")

    story += "\ntimeline:\n  " + "\n  ".join(timeline)
    logs = topology.log_tails()
    assert sorted(f.target for f in faults) == sorted(TARGETS * rounds)
    # The faults bit: each victim process was started once more per kill, and the gateway's
    # uplink dropped each time the proxy cut it and each time the cloud broker died.
    for service in topology.services():
        kills = sum(f.victim == service.name for f in faults)
        assert service.starts == 1 + kills, f"{story}\n{service.name} started {service.starts}x"
    assert topology.uplink.cuts == rounds
    gateway_log = (tmp_path / "logs" / "gateway.log").read_text()
    assert gateway_log.count(f"{SITE}.gateway.uplink: disconnected") >= 2 * rounds, story
    for name, figures in accepted.items():
        assert figures["still_queued"] == 0, f"{story}\n{name} left rows queued: {figures}"
        lost = {k: v for k, v in figures.items() if k.startswith(("dropped.", "expired."))}
        assert not any(lost.values()), f"{story}\n{name} dropped or expired rows: {lost}"
    assert final["result"] == expected["result"], f"{story}\nresults {final}\n{logs}"
    assert final["escalation"] == expected["escalation"], f"{story}\nescalations {final}\n{logs}"
    assert final["verdict"] == expected["escalation"], (
        f"{story}\nverdicts {final}\nescalations without a verdict:\n"
        f"{without_verdict(chaos_db)}\n{logs}"
    )
    for check in (
        "escalations_without_verdict",
        "verdicts_without_escalation",
        "escalations_without_result",
    ):
        assert final[check] == 0, f"{story}\n{check}: {final[check]}\n{logs}"
    # Not a vacuous pass: the agents kept producing through the faults.
    assert report["results_accepted"] >= 300, story
    assert report["escalations_accepted"] >= 20, story


def summarize(
    seed: int,
    *,
    faults_injected: int,
    accepted: dict[str, dict[str, int]],
    final: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The figures docs/RELIABILITY.md quotes."""
    results = sum(f.get("queued.result", 0) for f in accepted.values())
    escalations = sum(queued(f, "escalation") for f in accepted.values())
    stored_results = sum(final["result"].values())
    stored_escalations = sum(final["escalation"].values())
    return {
        "seed": seed,
        "agents": len(accepted),
        "faults_injected": faults_injected,
        "results_accepted": results,
        "escalations_accepted": escalations,
        "results_stored": stored_results,
        "escalations_stored": stored_escalations,
        "verdicts_stored": sum(final["verdict"].values()),
        "lost": results + escalations - stored_results - stored_escalations,
        "escalations_without_verdict": final["escalations_without_verdict"],
        "seconds": round(seconds, 1),
    }
