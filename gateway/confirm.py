"""The gateway's confirmations: what it has committed, told to each device (``ack``).

A device keeps its results and escalations after the site broker's PUBACK until the gateway says it
has them on disk (:mod:`shared.outbox`'s confirmed classes): the intake records each committed (or
already known) message id here, and after each group commit one ``ack`` per device goes out on the
site broker, at most 1,000 ids a message. An ack that is lost costs the device a re-send, which the
gateway recognises as a duplicate and confirms again.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

from edgecascade.shared.acks import ack_wires
from edgecascade.shared.mqtt import Outgoing


class DeviceConfirmations:
    """Message ids committed per device, published as acks by :meth:`flush`."""

    def __init__(self, site: str, prefix: str, publish: Callable[[Outgoing], object]) -> None:
        self.site, self.prefix = site, prefix
        self._publish = publish
        self._lock = threading.Lock()
        self._ids: defaultdict[str, list[str]] = defaultdict(list)
        self.sent = 0  # ack messages published

    def add(self, device: str, msg_id: str) -> None:
        with self._lock:
            self._ids[device].append(msg_id)

    def flush(self) -> None:
        with self._lock:
            pending, self._ids = self._ids, defaultdict(list)
        for device, ids in pending.items():
            for wire in ack_wires(self.site, device, ids, self.prefix):
                self._publish(wire)
                self.sent += 1
