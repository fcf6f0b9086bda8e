from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import ClassPolicy, Outbox


def msg(n: int, size: int = 10) -> Outgoing:
    return Outgoing(f"t/{n}", bytes([n % 256]) * size)


def test_priority_then_fifo_within_class(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("telemetry", msg(1), "m1")
    box.put("result", msg(2), "m2")
    box.put("escalation", msg(3), "m3")
    box.put("result", msg(4), "m4")
    assert [r.message.topic for r in box.peek()] == ["t/3", "t/2", "t/4", "t/1"]


def test_duplicate_message_id_is_ignored(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box.put("result", msg(1), "same") == "queued"
    assert box.put("result", msg(1), "same") == "duplicate"
    assert box.depth() == {"result": 1}
    assert box.counters()["duplicate.result"] == 1


def test_ack_deletes_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for n in range(5):
        box.put("result", msg(n), f"m{n}")
    rows = box.peek(3)
    box.ack(rows)
    assert [r.message.topic for r in box.peek()] == ["t/3", "t/4"]
    assert box.counters()["sent.result"] == 3
    assert box.size_bytes == 20


def test_ttl_expiry_is_counted(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(
        tmp_path / "o.db",
        classes={"telemetry": ClassPolicy(priority=2, ttl_s=10), "result": ClassPolicy()},
        clock=lambda: now[0],
    )
    box.put("telemetry", msg(1), "a")
    box.put("result", msg(2), "b")
    now[0] += 11
    assert [r.message.topic for r in box.peek()] == ["t/2"]
    assert box.counters()["expired.telemetry"] == 1


def test_quota_drops_lowest_priority_oldest_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", quota_bytes=100)
    for n in range(5):
        box.put("telemetry", msg(n, 20), f"t{n}")  # 100 bytes: full
    assert box.put("escalation", msg(9, 30), "e") == "queued"  # evicts two telemetry rows
    assert [r.message.topic for r in box.peek()] == ["t/9", "t/2", "t/3", "t/4"]
    assert box.counters()["dropped.telemetry"] == 2
    # A telemetry row cannot evict an escalation: it is dropped itself once nothing lower is left.
    box2 = Outbox(tmp_path / "o2.db", quota_bytes=30)
    box2.put("escalation", msg(1, 30), "e1")
    assert box2.put("telemetry", msg(2, 10), "t1") == "dropped"
    assert box2.counters()["dropped.telemetry"] == 1
    assert box2.depth() == {"escalation": 1}


def test_survives_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    script = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from shared.mqtt import Outgoing\n"
        "from shared.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}))\n"
        "for n in range(500):\n"
        "    box.put('result', Outgoing(f't/{n}', b'x' * 100), f'm{n}')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert proc.returncode == -9
    box = Outbox(path)
    rows = box.peek(1000)
    assert [r.message.topic for r in rows] == [f"t/{n}" for n in range(500)]
    assert box.size_bytes == 500 * 100


def test_put_many_is_one_transaction_with_outcomes_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", quota_bytes=60, dedup_window_s=60)
    box.put("result", msg(0), "old")
    outcomes = box.put_many(
        [
            ("result", msg(1), "a"),
            ("result", msg(2), "a"),  # the same id again within the group
            ("result", msg(3), "old"),  # seen before the group
            ("telemetry", msg(4, 100), "big"),  # larger than the whole quota
            ("escalation", msg(5), None),
        ]
    )
    assert outcomes == ["queued", "duplicate", "duplicate", "dropped", "queued"]
    assert [r.message.topic for r in box.peek()] == ["t/5", "t/0", "t/1"]
    assert box.size_bytes == 30
    try:
        box.put_many([("result", msg(6), "b"), ("nonsense", msg(7), "c")])
    except ValueError as exc:
        assert "'nonsense'" in str(exc)
    else:
        raise AssertionError("an unknown class was accepted")
    assert box.depth() == {"escalation": 1, "result": 2}  # nothing of the refused group


def test_replay_window_keeps_acknowledged_rows_for_a_resend(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.db", replay_window_s=10, clock=lambda: now[0])
    for n in range(3):
        box.put("result", msg(n), f"m{n}")
    box.ack(box.peek(2))
    box.ack(box.peek(2)[:0])  # nothing: a no-op
    assert [r.message.topic for r in box.peek()] == ["t/2"]  # sent rows are not sent as new
    assert box.depth() == {"result": 1} and box.size_bytes == 10
    assert [r.message.topic for r in box.replayable()] == ["t/0", "t/1"]
    assert box.counters()["sent.result"] == 2 and box.counters()["replayed.result"] == 2
    now[0] += 11  # past the window: forgotten
    assert box.replayable() == []
    assert box.depth() == {"result": 1}


def test_an_outbox_file_from_before_the_replay_column_opens(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, klass TEXT NOT NULL,"
        " priority INTEGER NOT NULL, msg_id TEXT UNIQUE, topic TEXT NOT NULL, payload BLOB"
        " NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL,"
        " expires REAL NOT NULL);"
        "CREATE INDEX outbox_order ON outbox (priority, seq);"
        "INSERT INTO outbox (klass, priority, msg_id, topic, payload, qos, retain, created,"
        " expires) VALUES ('result', 1, 'm0', 't/0', x'00', 1, 0, 1, 9e18);"
    )
    db.commit()
    db.close()
    box = Outbox(path, replay_window_s=5)
    assert [r.message.topic for r in box.peek()] == ["t/0"]
    box.ack(box.peek())
    assert [r.message.topic for r in box.replayable()] == ["t/0"]


def _deliver_then_crash_the_broker(tmp_path: Path, replay_window_s: float) -> int:
    """Results acknowledged by a broker that is SIGKILLed before it saves them, for a subscriber
    that is away: how many reach the subscriber once everything is back."""
    from edgecascade.brokers import MosquittoBroker
    from edgecascade.shared.mqtt import MqttLink
    from edgecascade.shared.outbox import OutboxSender
    from tests.utils.mqtt import Collector, wait_until

    # Never saved on its own: only a clean stop writes the persistence file.
    broker = MosquittoBroker(tmp_path / "broker", extra_conf="autosave_interval 3600")
    broker.start()
    try:
        with Collector(broker.settings, "t/#", client_id="away"):
            pass  # a persistent session subscribed to t/#, then away
        broker.stop()  # clean: the session is saved
        broker.start()
        box = Outbox(tmp_path / "o.db", replay_window_s=replay_window_s)
        link = MqttLink(broker.settings, "sender", persistent=False)
        sender = OutboxSender(box, link)
        link.start()
        sender.start()
        for n in range(20):
            box.put("result", msg(n), f"m{n}")
        assert wait_until(lambda: box.depth() == {}, timeout=15)  # every PUBACK is in
        broker.kill()  # the 20 queued messages were never saved
        broker.start()
        with Collector(broker.settings, "t/#", client_id="away") as collector:
            wait_until(lambda: len(collector.messages) >= 20, timeout=10)
            received = {m.topic for m in collector.messages}
        sender.stop()
        link.stop()
        box.close()
        return len(received)
    finally:
        broker.stop()


def test_a_broker_killed_before_saving_loses_nothing_within_the_replay_window(
    tmp_path: Path,
) -> None:
    assert _deliver_then_crash_the_broker(tmp_path / "replay", replay_window_s=30) == 20
    # The same without the window: the broker's PUBACK was the end of the outbox's duty, and
    # the crash took all 20.
    assert _deliver_then_crash_the_broker(tmp_path / "plain", replay_window_s=0) == 0


def test_audit_samples_go_last_and_are_dropped_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", quota_bytes=60)
    box.put("audit", msg(1, 20), "a1")
    box.put("telemetry", msg(2, 20), "t2")
    box.put("escalation", msg(3, 20), "e3")
    assert [r.message.topic for r in box.peek()] == ["t/3", "t/2", "t/1"]
    assert box.put("telemetry", msg(4, 20), "t4") == "queued"  # the audit sample makes room
    assert box.counters()["dropped.audit"] == 1
