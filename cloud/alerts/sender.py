"""The background sender: pending deliveries out through their channels, retried with backoff.

Deliveries are rows (``alert_deliveries``), written with the alert's state change, so what is not
delivered yet is still there after a restart and is sent by the next sender to run. Each pass
claims the due ones with a conditional update (``next_at`` moves past the attempt's timeout and
``attempts`` grows) so two replicas do not send the same one at the same time, then sends them on
a few threads: a channel that hangs holds one thread for ``alerts.timeout_s``, not the others,
and never the evaluator. A failure records ``last_error`` and the next attempt's time
(``retry_first_s`` doubling up to ``retry_max_s``, :class:`shared.backoff.Backoff`); after
``max_attempts`` the delivery is ``failed`` and kept. Delivery is at least once: a process that
dies between a send and its record sends it again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from edgecascade.cloud.alerts.channels import Channels
from edgecascade.cloud.alerts.config import AlertsSection
from edgecascade.cloud.db.alert_models import AlertDelivery
from edgecascade.cloud.errors import DeliveryError
from edgecascade.shared.backoff import Backoff

logger = logging.getLogger(__name__)

POLL_S = 1.0
MAX_PER_PASS = 100
SEND_THREADS = 4


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this sender claimed for one attempt (``attempts`` counts it)."""

    id: str
    channel: str
    payload: dict[str, Any]
    attempts: int


def retry_delay(alerts: AlertsSection, attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt (1-based)."""
    delays = Backoff(alerts.retry_first_s, alerts.retry_max_s).delays()
    return next(itertools.islice(delays, max(0, attempts - 1), None))


class DeliverySender(threading.Thread):
    """Sends due deliveries every ``POLL_S`` (sooner when :meth:`wake` is called)."""

    def __init__(self, engine: Engine, alerts: AlertsSection, channels: Channels) -> None:
        super().__init__(name="alert-sender", daemon=True)
        self.engine = engine
        self.alerts = alerts
        self.channels = channels
        self.counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="alert-send")

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=self.alerts.timeout_s + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.send_due()
            except Exception:  # a database hiccup must not end the thread
                self.counts["errors"] += 1
                logger.exception("alert sender: a pass failed")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def send_due(self, now: float | None = None) -> int:
        """Claim and send what is due; returns how many were attempted."""
        claimed = self._claim(time.time() if now is None else now)
        for delivery, future in [(d, self._pool.submit(self._attempt, d)) for d in claimed]:
            try:
                future.result()
            except Exception:
                logger.exception("alert sender: recording delivery %s failed", delivery.id)
        return len(claimed)

    def _claim(self, now: float) -> list[Claimed]:
        lease = now + self.alerts.timeout_s * 2 + POLL_S  # an attempt in flight is not due
        claimed = []
        with self.engine.begin() as conn:
            due = conn.execute(
                select(AlertDelivery.id, AlertDelivery.next_at)
                .where(AlertDelivery.state == "pending", AlertDelivery.next_at <= now)
                .order_by(AlertDelivery.next_at)
                .limit(MAX_PER_PASS)
            ).all()
        for delivery_id, next_at in due:
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(AlertDelivery)
                    .where(
                        AlertDelivery.id == delivery_id,
                        AlertDelivery.state == "pending",
                        AlertDelivery.next_at == next_at,
                    )
                    .values(next_at=lease, attempts=AlertDelivery.attempts + 1)
                ).rowcount
                if won == 1:
                    row = conn.execute(
                        select(
                            AlertDelivery.channel, AlertDelivery.payload, AlertDelivery.attempts
                        ).where(AlertDelivery.id == delivery_id)
                    ).one()
                    claimed.append(Claimed(delivery_id, row.channel, row.payload, row.attempts))
        return claimed

    def _attempt(self, delivery: Claimed) -> None:
        try:
            self.channels.send(delivery.channel, delivery.payload)
        except DeliveryError as exc:
            self._failed(delivery, str(exc))
        except Exception as exc:  # a channel library's own bug: recorded like any failure
            logger.exception("alert delivery %s via %s", delivery.id, delivery.channel)
            self._failed(delivery, f"{type(exc).__name__}: {exc}")
        else:
            self.counts["delivered"] += 1
            self._record(delivery.id, state="delivered", delivered_at=time.time())

    def _failed(self, delivery: Claimed, error: str) -> None:
        self.counts["failed_attempts"] += 1
        attempts = delivery.attempts
        if attempts >= self.alerts.max_attempts:
            logger.error(
                "alert delivery %s via %s given up after %d attempts: %s",
                delivery.id,
                delivery.channel,
                attempts,
                error,
            )
            self._record(delivery.id, state="failed", last_error=error)
            return
        delay = retry_delay(self.alerts, attempts)
        logger.warning(
            "alert delivery via %s failed (attempt %d, next in %.0f s): %s",
            delivery.channel,
            attempts,
            delay,
            error,
        )
        self._record(delivery.id, next_at=time.time() + delay, last_error=error)

    def _record(self, delivery_id: str, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values)
            )
