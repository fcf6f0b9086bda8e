"""The acknowledge-after-commit consumer alone: a plain function commits, a recorder acknowledges.

No broker and no database: what is proved is the order of commit and acknowledgement, the
backpressure of a full queue, retries and isolation, the drain on stop and the same-connection
rule. Every wait is for an event (a commit entered, an acknowledgement, a stall), never a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from edgecascade.shared.backoff import Backoff
from edgecascade.shared.consumer import Ack, CommitConsumer
from edgecascade.shared.errors import PermanentCommitError, TransientCommitError
from edgecascade.shared.mqtt import Received
from tests.utils.links import AckRecorder
from tests.utils.mqtt import wait_until

FAST = Backoff(first=0.001, cap=0.004)
TIMEOUT = 10.0


def received(mid: int) -> Received:
    return Received(topic=f"t/{mid}", payload=b"x", qos=1, retain=False, mid=mid)


class Store:
    """A commit callback that records batches, with the acks seen at each call; it can be held
    inside a commit (``hold``), made to fail by ``fail(batch)`` and answer ``answer``."""

    def __init__(self, link: AckRecorder) -> None:
        self.link = link
        self.batches: list[list[int]] = []
        self.acked_at_call: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: Callable[[list[int]], Exception | None] = lambda batch: None
        self.answer = Ack.ALL

    def hold(self) -> None:
        self.release.clear()

    def __call__(self, batch: list[int]) -> Ack:
        self.batches.append(list(batch))
        self.acked_at_call.append(list(self.link.acked))
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        error = self.fail(batch)
        if error is not None:
            raise error
        return self.answer


def as_is(item: int) -> int | None:
    return item


@pytest.fixture
def link() -> AckRecorder:
    return AckRecorder()


@pytest.fixture
def store(link: AckRecorder) -> Store:
    return Store(link)


Make = Callable[..., CommitConsumer[int, int]]


@pytest.fixture
def make(link: AckRecorder, store: Store) -> Iterator[Make]:
    """``make(**options)``: a consumer committing to ``store``, stopped after the test."""
    made: list[CommitConsumer[int, int]] = []

    def build(
        max_queued: int = 100,
        max_batch: int = 100,
        on_reject: Callable[[int, Exception], None] | None = None,
    ) -> CommitConsumer[int, int]:
        consumer: CommitConsumer[int, int] = CommitConsumer(
            "test",
            link,
            store,
            as_is,
            max_queued=max_queued,
            max_batch=max_batch,
            backoff=FAST,
            on_reject=on_reject,
        )
        made.append(consumer)
        return consumer

    yield build
    store.release.set()
    for consumer in made:
        consumer.stop()


def holding_the_first(consumer: CommitConsumer[int, int], store: Store) -> CommitConsumer[int, int]:
    """``consumer`` started, with message 1 inside a commit held until ``store.release``."""
    store.hold()
    consumer.start()
    consumer.submit(received(1), 1)
    assert store.entered.wait(TIMEOUT)
    return consumer


def test_a_message_is_acknowledged_only_after_its_commit(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = holding_the_first(make(), store)
    assert link.acked == []  # inside the commit: nothing acknowledged yet
    assert consumer.queued == 1  # taken, not settled
    store.release.set()
    assert link.wait_acked(1)
    assert link.acked == [1]
    assert store.acked_at_call == [[]]
    assert wait_until(lambda: consumer.queued == 0, timeout=TIMEOUT)
    assert consumer.groups == 1


def test_acknowledgements_follow_arrival_order_including_messages_with_nothing_to_commit(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = make(max_batch=4)
    for mid in range(1, 11):
        consumer.submit(received(mid), None if mid % 3 == 0 else mid)  # 3, 6, 9: ack only
    consumer.start()
    assert link.wait_acked(10)
    assert link.acked == list(range(1, 11))
    # Queued before the start: taken four at a time, and only the items are committed.
    assert store.batches == [[1, 2, 4], [5, 7, 8], [10]]
    assert store.acked_at_call == [[], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8]]


def test_nothing_to_commit_and_nothing_unsettled_before_it_is_acknowledged_on_arrival(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = make()
    consumer.start()
    for mid in (1, 2, 3):  # a flood of refused messages: acknowledged by the submitting thread
        consumer.submit(received(mid), None)
        assert link.acked == list(range(1, mid + 1))  # already, before submit returned
    assert consumer.immediate == 3 and store.batches == []
    store.hold()
    consumer.submit(received(4), 4)
    assert store.entered.wait(TIMEOUT)  # 4 is inside its commit
    consumer.submit(received(5), None)  # behind 4: waits for its turn
    consumer.submit(received(6), 6)
    assert link.acked == [1, 2, 3] and consumer.immediate == 3
    store.release.set()
    assert link.wait_acked(6)
    assert link.acked == [1, 2, 3, 4, 5, 6]
    assert store.batches == [[4], [6]]
    assert wait_until(lambda: consumer.queued == 0, timeout=TIMEOUT)
    consumer.submit(received(7), None)  # all settled again
    assert link.acked[-1] == 7 and consumer.immediate == 4
    consumer.stop()
    assert not consumer.submit(received(8), None)  # stopped: left to the next session
    assert link.acked[-1] == 7


def test_a_refused_message_is_acknowledged_at_once_even_behind_an_unsettled_commit(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = holding_the_first(make(), store)  # 1 is inside its commit
    consumer.submit(received(2), 2)
    for mid in (3, 4):  # a flood's excess: waits for nothing and holds nothing up
        assert consumer.refuse(received(mid))
    assert link.acked == [3, 4] and consumer.refused == 2
    assert consumer.queued == 2  # 1 and 2 are still to commit, then to acknowledge
    store.release.set()
    assert link.wait_acked(4)
    assert link.acked == [3, 4, 1, 2]  # a committed message only after its commit
    assert store.batches == [[1], [2]]
    consumer.stop()
    assert not consumer.refuse(received(5))  # stopped: left to the next session
    assert link.acked == [3, 4, 1, 2]


def test_a_full_queue_holds_the_network_thread_back(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = holding_the_first(make(max_queued=2), store)  # the queue is empty
    consumer.submit(received(2), 2)
    consumer.submit(received(3), 3)  # the queue is full
    submitted = threading.Event()

    def network_thread() -> None:
        consumer.submit(received(4), 4)
        submitted.set()

    threading.Thread(target=network_thread, daemon=True).start()
    assert wait_until(lambda: consumer.stalls == 1, timeout=TIMEOUT)
    assert not submitted.is_set()  # waiting for room: nobody takes while the commit is held
    assert consumer.queued == 3
    store.release.set()
    assert submitted.wait(TIMEOUT)
    assert link.wait_acked(4)
    assert link.acked == [1, 2, 3, 4]


def test_a_transient_failure_is_retried_with_backoff_and_not_acknowledged(
    make: Make, link: AckRecorder, store: Store
) -> None:
    failures = iter([TransientCommitError("database went away")] * 2)
    store.fail = lambda batch: next(failures, None)
    consumer = make()
    for mid in (1, 2):
        consumer.submit(received(mid), mid)
    consumer.start()
    assert link.wait_acked(2)
    assert store.batches == [[1, 2]] * 3  # the same batch, again and again
    assert store.acked_at_call == [[]] * 3  # never acknowledged before it was committed
    assert (consumer.retries, consumer.groups, consumer.rejected) == (2, 1, 0)
    assert link.acked == [1, 2]


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = Backoff(first=0.2, cap=1.0).delays()
    assert [next(delays) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_permanent_failure_isolates_the_message_that_causes_it(
    make: Make, link: AckRecorder, store: Store
) -> None:
    store.fail = lambda batch: PermanentCommitError("bad data") if 3 in batch else None
    rejected: list[tuple[int, str]] = []
    consumer = make(on_reject=lambda item, exc: rejected.append((item, str(exc))))
    for mid in range(1, 6):
        consumer.submit(received(mid), mid)
    consumer.start()
    assert link.wait_acked(5)
    assert store.batches == [[1, 2, 3, 4, 5], [1], [2], [3], [4], [5]]
    assert link.acked == [1, 2, 3, 4, 5]  # the poison one too, so it is not delivered forever
    assert rejected == [(3, "bad data")]
    assert consumer.rejected == 1


def test_an_unexpected_error_leaves_the_batch_to_the_broker_and_goes_on(
    make: Make, link: AckRecorder, store: Store
) -> None:
    store.fail = lambda batch: RuntimeError("a bug") if batch == [1] else None
    consumer = make()
    consumer.submit(received(1), 1)
    consumer.start()
    assert wait_until(lambda: consumer.errors == 1, timeout=TIMEOUT)
    consumer.submit(received(2), 2)
    assert link.wait_acked(1)
    assert link.acked == [2]


def test_stop_commits_and_acknowledges_what_is_queued_then_takes_nothing(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = make(max_batch=3)
    store.hold()
    consumer.start()
    for mid in range(1, 8):
        consumer.submit(received(mid), mid)
    assert store.entered.wait(TIMEOUT)
    stopper = threading.Thread(target=consumer.stop)
    stopper.start()
    assert wait_until(lambda: consumer.stopping, timeout=TIMEOUT)
    assert consumer.submit(received(8), 8) is False  # left for the broker's next session
    store.release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert link.acked == list(range(1, 8))
    assert [mid for batch in store.batches for mid in batch] == list(range(1, 8))
    assert consumer.queued == 0


def test_a_transient_failure_while_stopping_is_left_to_the_broker(
    make: Make, link: AckRecorder, store: Store
) -> None:
    store.fail = lambda batch: TransientCommitError("database went away")
    consumer = make()
    consumer.submit(received(1), 1)
    consumer.stop()  # not started: the queued message is still committed once, then given up
    consumer.start()
    consumer.stop()
    assert store.batches == [[1]]
    assert link.acked == []


def test_a_message_from_an_earlier_connection_is_not_acknowledged(
    make: Make, link: AckRecorder, store: Store
) -> None:
    consumer = holding_the_first(make(), store)
    link.reconnect()  # 1 comes again on the resumed session; its packet id is stale
    consumer.submit(received(2), 2)
    store.release.set()
    assert link.wait_acked(1)
    consumer.stop()
    assert store.batches == [[1], [2]]  # committed all the same
    assert link.acked == [2]


def test_a_commit_that_returns_ack_none_is_left_unacknowledged(
    make: Make, link: AckRecorder, store: Store
) -> None:
    store.answer = Ack.NONE  # e.g. the link that carries its results dropped: nothing to retry
    consumer = make()
    consumer.submit(received(1), 1)
    consumer.start()
    assert store.entered.wait(TIMEOUT)
    consumer.stop()
    assert store.batches == [[1]]
    assert link.acked == []
