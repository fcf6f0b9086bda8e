"""A broker-less stand-in for the acknowledging side of :class:`shared.mqtt.MqttLink`."""

from __future__ import annotations

import threading
from collections.abc import Callable

from edgecascade.shared.mqtt import Received


class AckRecorder:
    """Records acknowledged message ids in order (:class:`shared.consumer.AckLink`); a test
    calls :meth:`reconnect` to start a new connection and :meth:`wait_acked` to wait for acks."""

    def __init__(self, on_ack: Callable[[Received], None] | None = None) -> None:
        self.connects = 1
        self.acked: list[int] = []
        self._on_ack = on_ack
        self._cond = threading.Condition()

    def ack(self, message: Received) -> None:
        if self._on_ack is not None:
            self._on_ack(message)
        with self._cond:
            self.acked.append(message.mid)
            self._cond.notify_all()

    def reconnect(self) -> None:
        self.connects += 1

    def wait_acked(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` messages were acknowledged."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.acked) >= count, timeout)
