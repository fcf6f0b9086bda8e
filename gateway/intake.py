"""Group commit for the gateway's intake.

Every message from the site broker is acknowledged only after what it carries is committed to
the uplink outbox. Committing each message in its own transaction costs one disk write per
message; here the network thread hands each message to an intake thread, which commits
whatever arrived meanwhile in one transaction (:meth:`shared.outbox.Outbox.put_many`) and then
acknowledges the group in arrival order (MQTT wants PUBACKs in the order the PUBLISHes came).
The queue between them is bounded: when it is full the network thread waits, the broker stops
sending (its in-flight window fills) and the backlog stays in the broker, not in our memory.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from shared.mqtt import Outgoing, Received
from shared.outbox import Outbox, PutOutcome

logger = logging.getLogger(__name__)

Entry = tuple[str, Outgoing, str | None]  # (outbox class, message, msg_id)


@dataclass(frozen=True, slots=True)
class Pending:
    """A received message; ``entry`` is what to commit for it (None: only acknowledge it)."""

    message: Received
    entry: Entry | None = None
    on_outcome: Callable[[PutOutcome], None] | None = None


class Intake(threading.Thread):
    def __init__(
        self,
        outbox: Outbox,
        ack: Callable[[Received], None],
        *,
        max_pending: int = 2000,
        max_group: int = 500,
    ) -> None:
        super().__init__(name="intake", daemon=True)
        self.outbox = outbox
        self.max_pending = max_pending
        self.max_group = max_group
        self.groups = 0
        self.errors = 0
        self._ack = ack
        self._pending: deque[Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._done = False  # the thread has committed everything it took in and left

    def submit(self, pending: Pending) -> None:
        """Queue a message (the network thread); waits while the queue is full."""
        with self._cond:
            while len(self._pending) >= self.max_pending and not self._stopping:
                self._cond.wait(0.5)
            if self._done:
                self._commit([pending])  # after stop(): committed here, in order
                return
            self._pending.append(pending)
            self._cond.notify_all()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait(0.5)
                if not self._pending:
                    self._done = True  # stopping, and everything taken in was committed
                    return
                group = [
                    self._pending.popleft() for _ in range(min(self.max_group, len(self._pending)))
                ]
                self._cond.notify_all()
            self._commit(group)

    def _commit(self, group: list[Pending]) -> None:
        entries = [p.entry for p in group if p.entry is not None]
        try:
            outcomes = iter(self.outbox.put_many(entries))
        except Exception:
            # Not acknowledged: the broker delivers these again (the session is persistent).
            self.errors += 1
            logger.exception("intake: could not commit %d message(s) to the outbox", len(entries))
            return
        self.groups += 1
        for pending in group:
            if pending.entry is not None:
                outcome = next(outcomes)
                if pending.on_outcome is not None:
                    pending.on_outcome(outcome)
            self._ack(pending.message)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what is queued, then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.join(timeout)
