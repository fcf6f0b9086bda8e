"""The outbox's sender: publishes queued rows while the link is up and deletes (or, with a replay
window, marks) each one only after the broker's PUBACK."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edgecascade.shared.errors import BrokerError
from edgecascade.shared.mqtt import MqttLink
from edgecascade.shared.outbox.classes import Coalesce, Row, one_by_one
from edgecascade.shared.outbox.store import Outbox

logger = logging.getLogger(__name__)


class OutboxSender(threading.Thread):
    """Publishes outbox rows while the link is up (and ``ready()``, when given); deletes each row
    after its PUBACK."""

    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        *,
        batch: int = 200,
        ack_timeout: float = 10.0,
        ready: Callable[[], bool] | None = None,
        coalesce: Coalesce = one_by_one,
        linger_s: float = 0.0,
        confirm_after_s: float = 0.0,
    ) -> None:
        """``coalesce`` groups rows into the messages sent; ``linger_s`` waits up to that long
        after the oldest queued row for ``batch`` rows to gather (fewer, bigger messages);
        ``confirm_after_s`` > 0 sends again the rows the receiver has not confirmed that long
        after they were sent (the outbox's ``confirmed`` classes)."""
        super().__init__(name=f"outbox-sender-{link.client_id}", daemon=True)
        self.outbox = outbox
        self.link = link
        self.batch = batch
        self.ack_timeout = ack_timeout
        self._ready = ready
        self._coalesce = coalesce
        self._linger_s = linger_s
        self._confirm_after_s = confirm_after_s
        self._next_resend = time.monotonic() + confirm_after_s
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop and wait for the thread: a send in flight may wait ``ack_timeout`` for its
        acknowledgement, and the owner closes the outbox only after this returns."""
        self._stopping.set()
        with self.outbox.not_empty:
            self.outbox.not_empty.notify_all()
        self.join(timeout=self.ack_timeout + 5)
        if self.is_alive():
            logger.warning("outbox sender %s did not stop; its rows stay queued", self.name)

    def run(self) -> None:
        replayed_on = 0  # the connection whose replay was sent
        while not self._stopping.is_set():
            if not self.link.wait_connected(0.5):
                continue
            if self._ready is not None and not self._ready():
                self._stopping.wait(0.2)  # e.g. no consumer on the broker yet: hold the rows
                continue
            connection = self.link.connects
            if connection != replayed_on and self._replay(self.outbox.replayable()):
                replayed_on = connection
            if self._confirm_after_s > 0 and time.monotonic() >= self._next_resend:
                self._next_resend = time.monotonic() + self._confirm_after_s / 2
                self._replay(self.outbox.unconfirmed(self._confirm_after_s), "unconfirmed")
            rows = self.outbox.peek(self.batch)
            if not rows:
                self.outbox.wait(0.5)
                continue
            if len(rows) < self.batch and self._linger_s > 0:
                wait = rows[0].created + self._linger_s - time.time()
                if wait > 0.001:
                    self._stopping.wait(wait)  # let a batch gather
                    rows = self.outbox.peek(self.batch)
            self._send(rows)

    def _replay(self, rows: list[Row], what: str = "recently acknowledged") -> bool:
        """Send ``rows`` again: after a new connection those acknowledged within the replay
        window or not confirmed yet (the broker may have died before saving them), and rows whose
        confirmation is overdue. True once all were acknowledged again."""
        if rows:
            logger.info("outbox: sending %d %s row(s) again", len(rows), what)
        for start in range(0, len(rows), self.batch):
            pending = [
                self.link.publish(m) for m, _ in self._coalesce(rows[start : start + self.batch])
            ]
            for info in pending:
                try:
                    if not self.link.confirm(info, self.ack_timeout):
                        return False  # link dropped: replayed again on the next connection
                except BrokerError:
                    continue  # refused now as before; it was counted when first sent
        return True

    def _send(self, rows: list[Row]) -> None:
        pending = [(rows, self.link.publish(msg)) for msg, rows in self._coalesce(rows)]
        delivered: list[Row] = []
        rejected: list[Row] = []
        for group, info in pending:
            try:
                if not self.link.confirm(info, self.ack_timeout):
                    break  # link dropped: the rest is sent again after reconnect
            except BrokerError as exc:
                first = group[0]
                logger.error("outbox: %s refused on %s: %s", first.klass, first.message.topic, exc)
                rejected.extend(group)
                continue
            delivered.extend(group)
        self.outbox.ack(delivered)
        self.outbox.ack(rejected, outcome="rejected")
