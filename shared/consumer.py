"""Acknowledge after commit: the one consumer between paho's network thread and a store.

Whatever stores what it receives (the cloud's ingest and re-inference workers, the gateway's
intake) acknowledges a message (PUBACK; :class:`shared.mqtt.MqttLink` with ``manual_ack=True``)
only after what it carries is committed, so a process that dies before that gets the message
again from its persistent session. :class:`CommitConsumer` is that pipeline:

    network thread: submit(message, item) ── queue full ─▶ wait (the broker's window fills)
                         │
                         ▼
                 bounded queue, in arrival order
                         │
                         ▼
    commit thread: batch (``max_batch``, ``linger_s``), prepare each item once ── None ─▶ skip
                         │
                         ▼
                 commit(items) ── TransientCommitError ─▶ wait (backoff), commit them again
                         │   └─── PermanentCommitError ─▶ one by one; reject the one that fails
                         ▼
                 acknowledge the batch in arrival order, each on the connection it came on

The queue is bounded so that a backlog waits in the broker, not in our memory. PUBACKs go out in
the order the PUBLISHes came (MQTT asks for it), and only on the connection that delivered the
message: after a reconnect the resumed session delivers it again, and its old packet id may then
name another message. ``prepare`` runs once per message, before the first attempt, so a retried
commit does not redo (or recount) its work; a message it returns None for, or submitted without
an item, is only acknowledged in its turn. A message submitted without an item when nothing before
it is unsettled is acknowledged at once by the network thread: what a gateway refuses (a flooding
device's excess) then costs no hand-over to the commit thread, and the commit thread is woken only
when the queue gets its first message (or a full batch), not for every one.

:meth:`CommitConsumer.stop` stops taking messages (one submitted later is left unacknowledged for
the next session), commits and acknowledges what is queued, then returns. A transient failure
while stopping is not retried: those messages too are left to the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

from edgecascade.shared.backoff import Backoff
from edgecascade.shared.errors import PermanentCommitError, TransientCommitError
from edgecascade.shared.mqtt import Received

logger = logging.getLogger(__name__)

IDLE_GAP_S = 0.02  # lingering: no message for this long means the burst is over, commit now
RETRY = Backoff(first=0.2, cap=5.0)  # a database restart is waited out, not hammered

T = TypeVar("T")  # what the network thread queues for a message
U = TypeVar("U")  # what is committed for it
V = TypeVar("V")


class Ack(Enum):
    """What a commit callback asks for the batch it returned from."""

    ALL = "all"  # committed: acknowledge every message of the batch
    NONE = "none"  # not done, and retrying here is pointless: the broker delivers them again


class AckLink(Protocol):
    """The side of the connection the consumer needs (:class:`shared.mqtt.MqttLink` has it)."""

    @property
    def connects(self) -> int:
        """How many times the link has connected: which connection a message arrived on."""
        ...

    def ack(self, message: Received) -> None:
        """Acknowledge ``message`` to the broker."""
        ...


@dataclass(frozen=True, slots=True)
class _Delivery(Generic[V]):
    message: Received
    connection: int  # the link's connection when it arrived: its PUBACK is only valid there
    item: V | None  # what to commit for it; None: only acknowledge it, in its turn


class CommitConsumer(Generic[T, U]):
    """Queue, batch, ``prepare`` and ``commit`` off the network thread; acknowledge after commit.

    ``commit(items)`` stores a batch and returns :class:`Ack`; it raises
    :class:`TransientCommitError` to have the same batch committed again after a backoff, and
    :class:`PermanentCommitError` when the data itself fails: the batch is then committed message
    by message and a message that still fails goes to ``on_reject`` and is acknowledged. Any
    other exception leaves the batch unacknowledged (counted in :attr:`errors`).
    """

    def __init__(
        self,
        name: str,
        link: AckLink,
        commit: Callable[[list[U]], Ack],
        prepare: Callable[[T], U | None],
        *,
        max_queued: int,
        max_batch: int,
        linger_s: float = 0.0,
        backoff: Backoff = RETRY,
        on_reject: Callable[[U, Exception], None] | None = None,
    ) -> None:
        self.name = name
        self.groups = 0  # batches committed
        self.retries = 0  # commits attempted again after a transient failure
        self.rejected = 0  # messages acknowledged uncommitted: their data failed on its own
        self.errors = 0  # batches left unacknowledged after an unexpected error
        self.stalls = 0  # times the network thread waited for room in the queue
        self.immediate = 0  # messages with nothing to commit acknowledged on arrival
        self.refused = 0  # messages acknowledged out of turn by refuse()
        self._link = link
        self._commit = commit
        self._prepare = prepare
        self._on_reject = on_reject
        self._max_queued = max_queued
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._backoff = backoff
        self._queue: deque[_Delivery[T]] = deque()
        self._taken = 0  # messages of the batch being committed
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the commit thread (messages submitted before wait in the queue)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more messages, commit and acknowledge what is queued, then stop."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("%s: not finished within %.0fs", self.name, timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def queued(self) -> int:
        """Messages taken in and not yet settled (queued or being committed)."""
        with self._cond:
            return len(self._queue) + self._taken

    # -- network thread --------------------------------------------------------------------------
    def submit(self, message: Received, item: T | None = None) -> bool:
        """Queue ``message`` with what to commit for it (None: only acknowledge it in its turn).

        Waits while the queue is full. Returns False, leaving the message unacknowledged for the
        next session, once :meth:`stop` was called.
        """
        delivery = _Delivery(message, self._link.connects, item)
        with self._cond:
            if item is None and not self._queue and not self._taken and not self.stopping:
                # Nothing before it is unsettled: its turn is now. Acknowledged here, it costs
                # no wake-up of the commit thread (a flood of refused messages is mostly these).
                self.immediate += 1
                self._link.ack(message)
                return True
            if len(self._queue) >= self._max_queued and not self.stopping:
                self.stalls += 1
            while len(self._queue) >= self._max_queued and not self.stopping:
                self._cond.wait()
            if self.stopping:
                return False
            self._queue.append(delivery)
            if len(self._queue) == 1 or len(self._queue) >= self._max_batch:
                self._cond.notify_all()  # the commit thread waits for the first, or lingers
        return True

    def refuse(self, message: Received) -> bool:
        """Acknowledge ``message``, which will never be committed, now: out of turn.

        For what a gateway refuses (a device over its rate limit). MQTT asks for PUBACKs in the
        order the PUBLISHes came, but brokers match them by packet id (Mosquitto, EMQX); held back
        behind its neighbours' commits, a flood's refused messages filled the broker's in-flight
        window during any slow commit, and its neighbours' messages then waited in the broker
        behind the flood. Acknowledged at once, a refused message holds nothing up and costs
        the commit thread nothing; a message before it that is not committed yet is still
        acknowledged only after its commit (or delivered again). After :meth:`stop`: False,
        left unacknowledged for the next session (which refuses it again).
        """
        with self._cond:
            if self.stopping:
                return False
            self.refused += 1
        self._link.ack(message)
        return True

    # -- commit thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while batch := self._take():
            try:
                self._settle([_Delivery(d.message, d.connection, self._ready(d)) for d in batch])
            except Exception:  # a bug must not stop the consumer; these come again
                self.errors += 1
                logger.exception("%s: handling %d messages failed", self.name, len(batch))
            finally:
                with self._cond:
                    self._taken = 0

    def _ready(self, delivery: _Delivery[T]) -> U | None:
        return None if delivery.item is None else self._prepare(delivery.item)

    def _take(self) -> list[_Delivery[T]]:
        """The next batch in arrival order; empty once stopping with nothing queued."""
        batch: list[_Delivery[T]] = []
        with self._cond:
            while not self._queue and not self.stopping:
                self._cond.wait()
            deadline = time.monotonic() + self._linger_s
            while True:
                while self._queue and len(batch) < self._max_batch:
                    batch.append(self._queue.popleft())
                self._taken = len(batch)
                self._cond.notify_all()  # room for a waiting network thread
                if len(batch) >= self._max_batch or self.stopping:
                    return batch
                # Linger only while more is coming: the tail of a burst does not sit out the
                # whole interval.
                wait = min(deadline - time.monotonic(), IDLE_GAP_S)
                if wait <= 0 or not self._cond.wait(wait):
                    return batch

    def _settle(self, batch: list[_Delivery[U]]) -> None:
        """Commit the batch's items, then acknowledge it; one by one if its data fails."""
        items = [d.item for d in batch if d.item is not None]
        try:
            ack = self._retrying(items) if items else Ack.ALL
        except PermanentCommitError as exc:
            if len(items) > 1:
                self._isolate(batch, exc)
                return
            self.rejected += 1
            if self._on_reject is not None:
                self._on_reject(items[0], exc)
            ack = Ack.ALL  # acknowledged so the broker does not deliver it forever
        if ack is Ack.ALL:
            self._acknowledge(batch)

    def _retrying(self, items: list[U]) -> Ack | None:
        """``commit(items)``, again after each transient failure; None if stopped meanwhile."""
        delays = self._backoff.delays()
        while True:
            try:
                ack = self._commit(items)
            except TransientCommitError as exc:
                if self.stopping:
                    logger.warning(
                        "%s: stopping with %d uncommitted messages (the broker delivers them "
                        "again): %s",
                        self.name,
                        len(items),
                        exc,
                    )
                    return None
                delay = next(delays)
                logger.warning(
                    "%s: committing %d messages failed, retry in %.1fs: %s",
                    self.name,
                    len(items),
                    delay,
                    exc,
                )
                self.retries += 1
                self._stopping.wait(delay)
                continue
            self.groups += 1
            return ack

    def _isolate(self, batch: list[_Delivery[U]], exc: Exception) -> None:
        logger.warning(
            "%s: a batch of %d failed on its data, committing one by one: %s",
            self.name,
            len(batch),
            exc,
        )
        for delivery in batch:
            self._settle([delivery])

    def _acknowledge(self, batch: list[_Delivery[U]]) -> None:
        connection = self._link.connects
        for delivery in batch:
            # One from an earlier connection comes again on the resumed session (and is then
            # committed as a duplicate): its old packet id may now name another message.
            if delivery.connection == connection:
                self._link.ack(delivery.message)
