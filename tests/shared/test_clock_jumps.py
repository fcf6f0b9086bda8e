"""A device clock that jumps (no real-time clock, then NTP): TTLs keep their real length and
message ids keep their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecascade.shared import ids as id_generator
from edgecascade.shared.ids import message_id_time, new_message_id
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import Outbox

HOUR = 3600.0


class Clocks:
    """A wall clock and a monotonic one, moved by hand."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_000_000.0, 50.0  # a Pi booted in January 1970

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def jump(self, seconds: float) -> None:
        self.wall += seconds  # NTP sets the clock: only the wall clock moves


def outbox(tmp_path: Path, clocks: Clocks) -> Outbox:
    return Outbox(tmp_path / "outbox.db", clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def put(box: Outbox, n: int) -> None:
    for i in range(n):
        box.put("telemetry", Outgoing(f"t/{i}", b"x"), new_message_id())  # TTL 1 h


def test_a_forward_jump_expires_nothing_early(tmp_path: Path) -> None:
    clocks = Clocks()
    box = outbox(tmp_path, clocks)
    put(box, 3)
    clocks.tick(60)
    clocks.jump(56 * 365 * 24 * HOUR)  # 1970 -> 2026
    assert len(box.peek()) == 3  # a wall-clock TTL would have expired them all
    assert box.counters()["clock_jumps"] == 1
    clocks.tick(HOUR - 60 - 1)
    assert len(box.peek()) == 3
    clocks.tick(2)
    assert box.peek() == []  # an hour after they were put, by the monotonic clock
    assert box.counters()["expired.telemetry"] == 3


def test_a_backward_jump_keeps_rows_no_longer_than_their_ttl(tmp_path: Path) -> None:
    clocks = Clocks()
    clocks.wall = 2_000_000_000.0
    box = outbox(tmp_path, clocks)
    put(box, 2)
    clocks.jump(-10 * HOUR)  # a bad NTP server, or a hand-set clock
    clocks.tick(HOUR + 1)
    assert box.peek() == []  # without the rebase they would live ten more hours
    assert box.counters()["clock_jumps"] == 1


def test_small_drift_is_not_a_jump(tmp_path: Path) -> None:
    clocks = Clocks()
    box = outbox(tmp_path, clocks)
    put(box, 1)
    clocks.jump(5)  # NTP slewing a few seconds
    assert len(box.peek()) == 1 and "clock_jumps" not in box.counters()


def test_message_ids_keep_increasing_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The generator's memory of the last id, restored afterwards: later ids in this process
    # must not carry this test's far-future time.
    monkeypatch.setattr(id_generator, "_last_ms", 0)
    monkeypatch.setattr(id_generator, "_counter", 0)
    times = iter([2_000_000_000.0, 2_000_000_000.5, 2_000_000_000.5 - 3 * HOUR, 1_999_999_000.0])
    ids = [new_message_id(lambda: next(times)) for _ in range(4)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    # The id's time never goes back either: it says when the sequence was, not the bad clock.
    assert all(message_id_time(i) >= 2_000_000_000.0 for i in ids[2:])
