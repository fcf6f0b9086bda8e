"""The intake's group commit, at its seam: commit first, acknowledge after, in arrival order,
and a full queue holds the network thread back instead of growing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from edgecascade.gateway.intake import Intake, Pending
from edgecascade.shared.mqtt import Outgoing, Received
from edgecascade.shared.outbox import Outbox, PutOutcome
from tests.utils.diskfull import ROOMY, set_page_limit
from tests.utils.links import AckRecorder
from tests.utils.mqtt import wait_until


def received(mid: int) -> Received:
    return Received(topic=f"t/{mid}", payload=b"x", qos=1, retain=False, mid=mid)


def test_commits_in_groups_then_acknowledges_in_arrival_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", dedup_window_s=60)
    acked: list[tuple[int, int]] = []  # (mid, rows on disk when it was acknowledged)
    outcomes: dict[int, PutOutcome] = {}
    intake = Intake(box, AckRecorder(lambda m: acked.append((m.mid, sum(box.depth().values())))))

    def record(mid: int) -> Callable[[PutOutcome], None]:
        return lambda outcome: outcomes.__setitem__(mid, outcome)

    for mid in range(1, 301):
        entry = ("result", Outgoing(f"t/{mid}", b"r"), f"id{mid % 150}") if mid % 3 else None
        intake.submit(Pending(received(mid), entry, record(mid)))
        if mid == 1:
            intake.start()  # the rest arrive while groups are being committed
    intake.stop()
    assert [mid for mid, _ in acked] == list(range(1, 301))
    assert intake.groups < 300  # grouped
    # Each acknowledgement came after its own row was on disk.
    queued = 0
    for mid, rows in acked:
        if outcomes.get(mid) == "queued":
            queued += 1
        assert rows >= queued
    assert box.depth() == {"result": sum(1 for o in outcomes.values() if o == "queued")}
    assert sorted(set(outcomes.values())) == ["duplicate", "queued"]


def test_a_full_queue_blocks_the_network_thread(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    acked: list[int] = []
    intake = Intake(box, AckRecorder(lambda m: acked.append(m.mid)), max_pending=5)
    submitted = threading.Event()
    committing = threading.Event()
    returned: list[bool] = []  # per submit: had the intake started when it returned?

    def network_thread() -> None:
        for mid in range(10):
            intake.submit(Pending(received(mid), ("result", Outgoing("t", b"r"), None)))
            returned.append(committing.is_set())
        submitted.set()

    thread = threading.Thread(target=network_thread, daemon=True)
    thread.start()
    assert wait_until(lambda: len(returned) >= 5, timeout=5)  # the five that fit
    committing.set()
    intake.start()
    assert wait_until(submitted.is_set, timeout=5)
    # The sixth submit returned only once the intake took from the queue: it waited.
    assert returned == [False] * 5 + [True] * 5
    intake.stop()
    assert acked == list(range(10))


def test_a_full_disk_leaves_the_group_unacknowledged_until_space_returns(tmp_path: Path) -> None:
    """The broker keeps what the gateway could not commit: nothing is dropped at the intake."""
    box = Outbox(tmp_path / "o.db")
    box.put("result", Outgoing("t/0", b"r" * 3000), "id0")
    set_page_limit(box, 1)  # SQLITE_FULL, as on a full disk
    acked: list[int] = []
    intake = Intake(box, AckRecorder(lambda m: acked.append(m.mid)))
    intake.start()
    for mid in range(1, 11):
        intake.submit(Pending(received(mid), ("result", Outgoing(f"t/{mid}", b"r" * 3000), None)))
    assert wait_until(lambda: intake._consumer.retries >= 2)  # committed again, and again
    assert acked == [] and box.depth() == {"result": 1}
    set_page_limit(box, ROOMY)
    assert wait_until(lambda: len(acked) == 10)
    intake.stop()
    assert acked == list(range(1, 11)) and box.depth() == {"result": 11}
    assert not any(name.startswith("dropped.") for name in box.counters())


def test_a_refused_message_is_acknowledged_before_the_commits_queued_ahead_of_it(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db")
    acked: list[tuple[int, int]] = []  # (mid, rows on disk when it was acknowledged)
    intake = Intake(box, AckRecorder(lambda m: acked.append((m.mid, sum(box.depth().values())))))
    intake.submit(Pending(received(1), ("result", Outgoing("t/1", b"r"), "id1")))
    intake.refuse(received(2))  # not started: 1 is not committed, 2 is acknowledged all the same
    assert acked == [(2, 0)]
    intake.start()
    intake.stop()
    assert acked == [(2, 0), (1, 1)]  # 1 only once on disk
    intake.refuse(received(3))  # stopped: left to the broker
    assert [mid for mid, _ in acked] == [2, 1]
