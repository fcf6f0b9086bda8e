"""The outbox under the faults of a device's storage: a power cut and a full disk."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgecascade.shared.errors import DiskFullError, TransientCommitError
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import Outbox
from tests.utils.diskfull import ROOMY, set_page_limit
from tests.utils.paths import REPO
from tests.utils.powercut import reboot, sqlite_library


@dataclass
class Cut:
    """What the writer reported before the power went."""

    accepted: list[str] = field(default_factory=list)  # in order
    acked: set[str] = field(default_factory=set)
    in_doubt: set[str] = field(default_factory=set)  # being acknowledged when the power went

    def read(self, line: str) -> None:
        word, *ids = line.split()
        if word == "accepted":
            self.accepted.extend(ids)
        elif word == "acking":
            self.in_doubt = set(ids)
        elif word == "acked":
            self.acked |= self.in_doubt
            self.in_doubt = set()

    @property
    def next_id(self) -> str:
        """The message being put when the power went: committed or not."""
        return f"m{len(self.accepted):05d}"


def cut_power(
    tmp_path: Path, synchronous: str, after: int, *, midstream: bool, seed: int | None = None
) -> tuple[Cut, Path]:
    """Run the power-cut writer, SIGKILL it once it has accepted ``after`` results (while it
    goes on putting, ``midstream``; else once it stopped after exactly that many) and reboot
    (``seed``: some unsynced writes survive, see :func:`reboot`). Returns what the writer
    reported and the outbox's path."""
    if sqlite_library() is None:
        pytest.skip("Python's sqlite3 hides its SQLite library: no VFS can be registered")
    folder, durable = tmp_path / "disk", tmp_path / "durable"
    folder.mkdir()
    durable.mkdir()
    argv = [sys.executable, "-m", "tests.utils.powercut", str(folder), str(durable)]
    proc = subprocess.Popen(
        [*argv, synchronous, str(100_000 if midstream else after)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    cut = Cut()
    for line in proc.stdout:
        cut.read(line)
        if (midstream and len(cut.accepted) >= after) or line.startswith("done"):
            proc.send_signal(signal.SIGKILL)
            break
    tail = proc.stdout.read()  # what it printed before the kill landed
    proc.stdout.close()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for line in tail.splitlines():
        cut.read(line)
    reboot(folder, durable, seed)
    return cut, folder / "outbox.db"


def after_reboot(path: Path) -> tuple[list[str], dict[str, int]]:
    """The ids queued in the rebooted outbox, in order, and its counters (checked whole)."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    box = Outbox(path)
    try:
        rows = box.peek(100_000)
        ids = [row.message.payload[:6].decode() for row in rows]
        for row, msg_id in zip(rows, ids, strict=True):
            assert row.message.payload == msg_id.encode() * 60  # whole, not torn
        return ids, box.counters()
    finally:
        box.close()


@pytest.mark.parametrize(
    ("after", "seed"),
    [(100, None), (700, None), (300, 1), (700, 2)],  # before and after the first checkpoint
)
def test_a_power_cut_keeps_every_accepted_message_with_synchronous_full(
    tmp_path: Path, after: int, seed: int | None
) -> None:
    cut, path = cut_power(tmp_path, "full", after, midstream=True, seed=seed)
    queued, counters = after_reboot(path)
    expected = [m for m in cut.accepted if m not in cut.acked | cut.in_doubt]
    # Every accepted, unacknowledged message is there, in order; the one being put when the
    # power went (committed, not yet reported) may be there too. Acknowledgements are durable
    # (one being written when the power went may or may not have been).
    assert [m for m in queued if m not in cut.in_doubt][: len(expected)] == expected
    assert set(queued) - set(expected) - cut.in_doubt <= {cut.next_id}
    assert not set(queued) & cut.acked
    assert counters["queued.result"] >= len(cut.accepted)
    assert len(cut.acked) <= counters["sent.result"] <= len(cut.acked) + len(cut.in_doubt)


def test_a_power_cut_with_synchronous_normal_loses_the_last_accepted_ones(
    tmp_path: Path,
) -> None:
    """What ``outbox_sync = normal`` costs: the commits since the last checkpoint, a tail of
    the accepted messages (never a hole, never a corrupt file). Also shows that the power-cut
    layer really drops unsynced writes. The cut comes after exactly 450 puts, at a fixed
    distance from the last checkpoint."""
    cut, path = cut_power(tmp_path, "normal", 450, midstream=False)
    queued, _ = after_reboot(path)
    kept = set(queued)
    lost = [m for m in cut.accepted if m not in cut.acked and m not in kept]
    assert lost, "synchronous=normal lost nothing: the power cut did not drop unsynced writes"
    assert max(kept | cut.acked) < min(lost)  # a tail: everything after a point
    # Acknowledgements after the checkpoint are lost too: those rows come back, to be sent
    # again (the receivers drop them by message id).
    assert kept <= set(cut.accepted) and not cut.in_doubt
    logging.getLogger(__name__).info(
        "normal: %d of %d accepted lost, %d kept", len(lost), len(cut.accepted), len(kept)
    )


@pytest.mark.parametrize("seed", [3, 4])
def test_torn_unsynced_writes_with_synchronous_normal_lose_a_tail_never_the_file(
    tmp_path: Path, seed: int
) -> None:
    """Some of the unsynced writes reached the card, torn and out of order: still a whole
    database that lost at most the messages after some point."""
    cut, path = cut_power(tmp_path, "normal", 450, midstream=True, seed=seed)
    queued, _ = after_reboot(path)
    kept = set(queued)
    lost = [m for m in cut.accepted if m not in cut.acked | cut.in_doubt and m not in kept]
    if lost:
        assert max(kept | cut.acked) < min(lost)
    assert kept <= set(cut.accepted) | {cut.next_id}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "o.db")
    yield box
    box.close()


def big(n: int) -> Outgoing:
    return Outgoing(f"t/{n}", bytes([n % 256]) * 3000)  # one row per page: each needs a new one


def test_put_on_a_full_disk_drops_and_counts_and_recovers(
    limited: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    box = limited
    for n in range(5):
        assert box.put("result", big(n), f"m{n}") == "queued"
    set_page_limit(box, 1)
    caplog.set_level(logging.INFO, logger="edgecascade.shared.outbox")
    outcomes = [box.put("result", big(n), f"m{n}") for n in range(5, 25)]
    assert outcomes == ["dropped"] * 20  # never an exception into the producer
    assert box.put("escalation", big(25), "e25") == "dropped"
    full_logs = [r for r in caplog.records if "disk full" in r.getMessage()]
    assert len(full_logs) == 1  # once per episode, not per message
    counters = box.counters()
    assert counters["dropped.disk_full.result"] == 20
    assert counters["dropped.disk_full.escalation"] == 1
    assert counters["disk_full.episodes"] == 1
    # What was queued before is untouched and still sent.
    assert [r.message.topic for r in box.peek()] == [f"t/{n}" for n in range(5)]
    box.ack(box.peek(2))
    set_page_limit(box, ROOMY)  # space returns
    assert box.put("result", big(99), "m99") == "queued"
    assert [r.message.topic for r in box.peek()] == ["t/2", "t/3", "t/4", "t/99"]
    assert sum("space again" in r.getMessage() for r in caplog.records) == 1
    # The counts kept in memory while full went to disk with the first commit that had room.
    box.close()
    reopened = Outbox(box.path)
    counters = reopened.counters()
    reopened.close()
    assert counters["dropped.disk_full.result"] == 20 and counters["disk_full.episodes"] == 1
    assert counters["queued.result"] == 6 and counters["sent.result"] == 2


def test_an_acknowledgement_that_fits_does_not_end_the_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Marking rows sent (a replay window) needs no new page: it commits while puts still
    fail, and that is still one episode, logged once."""
    box = Outbox(tmp_path / "o.db", replay_window_s=60)
    for n in range(3):
        box.put("result", big(n), f"m{n}")
    set_page_limit(box, 1)
    caplog.set_level(logging.INFO, logger="edgecascade.shared.outbox")
    for n in range(3, 9):
        assert box.put("result", big(n), f"m{n}") == "dropped"
        box.ack(box.peek(1))  # written: the row is marked sent, in place
    assert box.depth() == {} and box.counters()["sent.result"] == 3
    assert sum("disk full" in r.getMessage() for r in caplog.records) == 1
    assert not any("space again" in r.getMessage() for r in caplog.records)
    assert box.counters()["disk_full.episodes"] == 1
    box.close()


def test_put_many_on_a_full_disk_raises_a_transient_error_and_keeps_nothing(
    limited: Outbox,
) -> None:
    """The gateway's intake holds its group unacknowledged at the broker and commits it again
    later (:class:`TransientCommitError`), so nothing counts as dropped there."""
    box = limited
    box.put("result", big(0), "m0")
    set_page_limit(box, 1)
    with pytest.raises(DiskFullError, match="disk full") as caught:
        box.put_many([("result", big(1), "m1"), ("result", big(2), "m2")])
    assert isinstance(caught.value, TransientCommitError)
    assert box.depth() == {"result": 1}
    assert not any(name.startswith("dropped.") for name in box.counters())
    set_page_limit(box, ROOMY)
    assert box.put_many([("result", big(1), "m1"), ("result", big(2), "m2")]) == ["queued"] * 2
    assert box.size_bytes == 3 * 3000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs); mounting needs root (CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_filesystem_drops_counts_holds_acks_and_recovers(small_disk: Path) -> None:
    box = Outbox(small_disk / "o.db")
    try:
        for n in range(20):
            assert box.put("result", big(n), f"m{n}") == "queued"
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # everything else on the disk, to the last block
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28  # ENOSPC
        finally:
            os.close(fd)
        dropped = sum(box.put("result", big(n), f"m{n}") == "dropped" for n in range(20, 60))
        assert dropped > 0
        delivered = box.peek(5)
        box.ack(delivered)  # recorded now or held in memory; either way not sent again
        assert box.depth() == {"result": 15}  # the delivered ones are not counted as queued
        assert [r.message.topic for r in box.peek(100)][:5] == [f"t/{n}" for n in range(5, 10)]
        filler.unlink()  # space returns
        assert box.put("result", big(99), "m99") == "queued"
        queued = [r.message.topic for r in box.peek(100)]
        assert queued[:15] == [f"t/{n}" for n in range(5, 20)] and queued[-1] == "t/99"
        counters = box.counters()
        assert counters["dropped.disk_full.result"] == dropped
        assert counters["sent.result"] == 5
    finally:
        box.close()
    db = sqlite3.connect(small_disk / "o.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == len(queued)
    finally:
        db.close()
