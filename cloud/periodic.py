"""A thread of the cloud process that does one pass every few seconds and publishes on MQTT.

The rollout controller and the escalation resubmitter share this life: a publish-only MQTT
link of their own (``<client_id>-<name>``), started with :meth:`PeriodicPublisher.begin`, a
pass every ``interval_s`` in which an error is logged and counted but never ends the thread,
and :meth:`PeriodicPublisher.stop` that lets the current pass finish.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.mqtt import MqttLink

logger = logging.getLogger(__name__)


class PeriodicPublisher(threading.Thread):
    """Calls :meth:`tick` every ``interval_s`` until stopped; subclasses publish on ``_link``."""

    def __init__(self, name: str, settings: CloudSettings, interval_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self.settings = settings
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._link = MqttLink(settings.mqtt, f"{settings.client_id}-{name}", persistent=False)

    def begin(self, *, loop: bool = True) -> None:
        """Connect; and run the passes unless ``loop`` is False (a process that only publishes
        through the object's calls, e.g. the trainer starting a rollout)."""
        self._link.start()
        if loop:
            self.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10)
        self._link.stop()

    def run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # one bad pass must not end the thread
                self.counts["errors"] += 1
                logger.exception("%s: a pass failed", self.name)

    def tick(self) -> None:
        raise NotImplementedError
