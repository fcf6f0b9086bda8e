"""An outage longer than the broker's session, then a broker restart without its store: the
next hop's confirmations (``ack``) make it cost re-sends, never results.

The gateway hangs (SIGSTOP: a mini-PC that lost power sends no FIN), so the site broker keeps
queueing the cameras' results for its session until the keepalive gives up on it; the gateway
then stays away longer than its session expiry (the broker discards the session and its queue);
then the site broker is killed and started without its persistence file. Results the broker had
acknowledged to the cameras are gone from it. With confirmations the cameras still hold them
(sent, not confirmed) and send them again; every accepted result is stored once. Without them
(``outbox_confirm_s = 0``, no replay window) the same run loses results: the control shows the
test can fail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.chaos.test_chaos import agent_outbox, queued
from tests.chaos.topology import AGENT_ENV, Topology
from tests.utils.mqtt import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

SESSION_S = 4  # the gateway's session expiry on the site broker
KEEPALIVE_S = 5  # the broker gives up on a silent client after 1.5 x this


def stored_results(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM results").fetchone()[0])


def wait_stored(database: Path, accepted: int, quiet_s: float = 5.0, timeout: float = 60) -> None:
    """Until the cloud stored ``accepted`` results, or stored nothing new for ``quiet_s`` (what
    was lost will not come: the control need not wait out the whole timeout)."""
    last, changed = -1, time.monotonic()
    deadline = changed + timeout
    while time.monotonic() < deadline:
        stored = stored_results(database)
        if stored >= accepted:
            return
        if stored != last:
            last, changed = stored, time.monotonic()
        elif time.monotonic() - changed > quiet_s:
            return
        time.sleep(0.5)


def awaiting(outbox: Path) -> int:
    """Rows an outbox sent and still waits to hear are committed."""
    with sqlite3.connect(outbox) as db:
        return int(
            db.execute(
                "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL AND msg_id IS NOT NULL"
                " AND klass IN ('result', 'escalation', 'audit')"
            ).fetchone()[0]
        )


def run_outage(tmp_path: Path, confirm_s: float) -> tuple[int, int, dict[str, int]]:
    """(accepted by the cameras, stored by the cloud, the cameras' outbox counters)."""
    database = tmp_path / "cloud.db"
    topology = Topology(tmp_path, f"sqlite:///{database}", agents=2, workers=1, fps=10)
    outbox = {
        "EC_AGENT_OUTBOX_CONFIRM_S": f"{confirm_s:g}",
        "EC_AGENT_OUTBOX_REPLAY_S": "0",
        "EC_GATEWAY_OUTBOX_CONFIRM_S": f"{confirm_s:g}",
        "EC_GATEWAY_OUTBOX_REPLAY_S": "0",
    }
    topology.gateway.env = {
        **outbox,
        "EC_GATEWAY_SITE_MQTT__SESSION_EXPIRY": str(SESSION_S),
        "EC_GATEWAY_SITE_MQTT__KEEPALIVE": str(KEEPALIVE_S),
    }
    for agent in topology.agents:
        agent.env = {**AGENT_ENV, **outbox}
    try:
        topology.start()
        assert wait_until(lambda: stored_results(database) > 20, timeout=60), topology.log_tails()
        gateway = topology.gateway.proc
        assert gateway is not None
        os.kill(gateway.pid, signal.SIGSTOP)  # hangs with its connections open
        # Queued for the hung session until the keepalive ends it, then the session expires.
        time.sleep(1.5 * KEEPALIVE_S + SESSION_S + 3)
        topology.site_broker.kill()
        (topology.site_broker.workdir / "mosquitto.db").unlink(missing_ok=True)
        topology.site_broker.start()
        os.kill(gateway.pid, signal.SIGCONT)
        time.sleep(5)  # the cameras run on, through the gateway again
        for agent in topology.agents:  # SIGTERM: finish, drain (sent and confirmed), leave
            assert agent.proc is not None
            code = topology.group.stop(agent.proc, timeout=240)
            assert code == 0, f"{agent.name} exited with {code}\n{agent.log_tail()}"
        outboxes = [topology.agent_dir(a.name) / "outbox.db" for a in topology.agents]
        figures = [agent_outbox(path) for path in outboxes]
        accepted = sum(queued(f, "result") for f in figures)
        wait_stored(database, accepted)
        if confirm_s > 0:  # the cloud confirmed what the gateway sent: nothing left waiting
            uplink = tmp_path / "gateway" / "outbox.db"
            assert wait_until(lambda: awaiting(uplink) == 0, timeout=60), topology.log_tails()
            assert all(awaiting(path) == 0 for path in outboxes)
        counters: dict[str, int] = {}
        for f in figures:
            for name, value in f.items():
                counters[name] = counters.get(name, 0) + value
        return accepted, stored_results(database), counters
    finally:
        topology.stop()


def test_an_outage_longer_than_the_session_loses_nothing_with_confirmations(
    tmp_path: Path,
) -> None:
    accepted, stored, counters = run_outage(tmp_path, confirm_s=3.0)
    assert accepted > 100
    assert stored == accepted, (stored, accepted, counters)
    # The outage cost re-sends: results the broker had dropped went again and were confirmed.
    assert counters.get("replayed.result", 0) + counters.get("resent.result", 0) > 0
    assert counters.get("confirmed.result", 0) == accepted


def test_without_confirmations_the_same_outage_loses_results(tmp_path: Path) -> None:
    accepted, stored, _ = run_outage(tmp_path, confirm_s=0)
    assert 0 < stored < accepted
