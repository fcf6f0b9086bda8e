"""The agent with the real edge model on real frames, against a real broker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.agent import Agent
from edgecascade.edge_agent.settings import AgentSettings, EscalationSettings, SourceSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import EscalationHeader, Message, ResultMessage, StateMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.agents import agent_settings
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import EDGE_MODEL, REPO, sample_subset


def settings_for(
    broker: MosquittoBroker, frames: Path, data_dir: Path, **source: object
) -> AgentSettings:
    return agent_settings(
        broker,
        data_dir,
        SourceSettings(path=frames, fps=1000, **source),
        escalation=EscalationSettings(
            threshold=0.9, budget_per_minute=6000, burst=1000, cooldown_s=0
        ),
    )


def decoded(collector: Collector, kind: Kind) -> list[Message]:
    out = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is kind:
            out.append(decode(parsed, message.payload).message)
    return out


def test_publishes_one_result_per_frame_and_escalates_unsure_ones(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    frames = sample_subset(tmp_path / "frames", per_class=3)
    (tmp_path / "frames" / "bag" / "broken.png").write_bytes(b"not a png")
    settings = settings_for(broker, tmp_path / "frames", tmp_path / "agent")
    with Collector(broker.settings, "ec/v1/#") as collector:
        stats = Agent(settings).run(threading.Event())
        assert stats.frames == 30 and stats.skipped == 1
        assert wait_until(lambda: len(decoded(collector, Kind.RESULT)) == 30)
        results = [r for r in decoded(collector, Kind.RESULT) if isinstance(r, ResultMessage)]
        escalations = [
            e
            for e in decoded(collector, Kind.ESCALATION)
            if isinstance(e, EscalationHeader) and not e.audit  # random audit samples aside
        ]
    expected = {p.relative_to(tmp_path / "frames").as_posix() for p in frames}
    assert {r.frame_id for r in results} == expected
    assert all(r.ground_truth == r.frame_id.split("/")[0] for r in results)
    correct = sum(r.top[0].label == r.ground_truth for r in results)
    assert correct >= 24  # the edge model is ~88% accurate
    # Exactly the results below the threshold were escalated, each pointing at its result.
    unsure = {r.msg_id for r in results if r.top[0].score < 0.9}
    assert {e.result_id for e in escalations} == unsure
    assert {r.msg_id for r in results if r.escalated} == unsure
    assert stats.escalations == len(unsure)


def test_audits_every_sure_frame_at_fraction_one_until_the_budget_is_spent(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=3)

    def run(name: str, fraction: float, burst: int) -> tuple[Any, list[Any], list[Any]]:
        escalation = EscalationSettings(
            threshold=0.9, budget_per_minute=0, burst=burst, cooldown_s=0, audit_fraction=fraction
        )
        source = SourceSettings(path=tmp_path / "frames", fps=1000)
        settings = agent_settings(broker, tmp_path / name, source, escalation=escalation)
        settings = settings.model_copy(update={"device": name})
        with Collector(broker.settings, f"ec/v1/s1/{name}/#") as collector:
            stats = Agent(settings).run(threading.Event())
            assert wait_until(lambda: len(decoded(collector, Kind.RESULT)) == 30)
            want = stats.escalations + stats.audits
            assert wait_until(lambda: len(decoded(collector, Kind.ESCALATION)) == want)
            results = decoded(collector, Kind.RESULT)
            return stats, results, decoded(collector, Kind.ESCALATION)

    # A budget for every frame: each frame is escalated (unsure) or audited (sure), none twice.
    stats, results, ups = run("all", 1.0, 1000)
    audits = {e.result_id for e in ups if e.audit}
    assert all(e.reason == "audit" for e in ups if e.audit)
    assert audits == {r.msg_id for r in results if not r.escalated}
    assert {e.result_id for e in ups if not e.audit} == {r.msg_id for r in results if r.escalated}
    assert stats.audits == len(audits) > 0
    counters = sqlite3.connect(tmp_path / "all" / "outbox.db").execute(
        "SELECT name, value FROM counters WHERE name = 'queued.audit'"
    )
    assert dict(counters.fetchall()) == {"queued.audit": len(audits)}
    # Eight tokens and none after them: the first eight frames, escalated or audited, then none.
    stats, results, ups = run("few", 1.0, 8)
    assert stats.escalations + stats.audits == 8 == len(ups)
    first = {r.msg_id for r in sorted(results, key=lambda r: r.captured_at)[:8]}
    assert {e.result_id for e in ups} == first
    # Fraction 0: no audit sample at all.
    stats, results, ups = run("none", 0.0, 1000)
    assert stats.audits == 0 and not any(e.audit for e in ups)
    assert len(ups) == stats.escalations > 0


def test_sigkill_while_broker_is_down_loses_nothing(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    sample_subset(tmp_path / "frames", per_class=5)
    broker.kill()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "agent",
        "--site",
        "s1",
        "--device",
        "cam1",
        "--model",
        str(EDGE_MODEL),
        "--frames",
        str(tmp_path / "frames"),
        "--fps",
        "1000",
        "--data-dir",
        str(tmp_path / "agent"),
        "--mqtt-port",
        str(broker.port),
        "--threshold",
        "0",
        "--no-gateway",
    ]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    outbox = tmp_path / "agent" / "outbox.db"
    assert wait_until(lambda: _queued(outbox) >= 50, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
    accepted = _queued_result_ids(outbox)
    assert len(accepted) == 50
    broker.start()
    with Collector(broker.settings, topic_filter(Kind.RESULT)) as collector:
        # Restart for one more frame: the restarted agent also delivers what was accepted before.
        settings = settings_for(broker, tmp_path / "frames", tmp_path / "agent", max_frames=1)
        Agent(settings).run(threading.Event())
        assert wait_until(lambda: len(decoded(collector, Kind.RESULT)) >= 51)
        delivered = [r.msg_id for r in decoded(collector, Kind.RESULT)]
    broker.stop()
    assert len(delivered) == len(set(delivered)) == 51
    assert accepted < set(delivered)


def _queued_result_ids(path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT topic, payload FROM outbox WHERE klass = 'result'").fetchall()
    return {decode(Topic.parse(t), bytes(p)).message.msg_id for t, p in rows}


def _queued(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT COUNT(*) FROM outbox WHERE klass = 'result'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def test_holds_results_until_the_site_gateway_is_online(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=1)
    settings = settings_for(broker, tmp_path / "frames", tmp_path / "agent").model_copy(
        update={"gateway_id": "gw"}
    )
    agent = Agent(settings)
    stop = threading.Event()
    gateway_state = topic("s1", "gw", Kind.STATE)
    # The collector also sees the gateway's state, in the broker's order: a result published
    # before the agent learnt that the gateway is online would arrive before that state.
    with Collector(broker.settings, topic_filter(Kind.RESULT), gateway_state) as collector:
        publish_all(broker.settings, [Outgoing(gateway_state, b"{broken", retain=True)])
        thread = threading.Thread(target=agent.run, args=(stop,))
        thread.start()
        assert wait_until(lambda: agent.stats.frames == 10 and agent.stats.rejected == 1)
        online = encode(StateMessage(status="online", role="gateway"))
        publish_all(broker.settings, [Outgoing(gateway_state, online, retain=True)])
        assert wait_until(lambda: len(decoded(collector, Kind.RESULT)) == 10)
        arrived = [m.payload if m.topic == gateway_state else b"result" for m in collector.messages]
        assert arrived == [b"{broken", online] + [b"result"] * 10
        stop.set()
        thread.join(timeout=30)
