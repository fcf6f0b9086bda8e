"""MQTT helpers for tests: a collecting subscriber and polling with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from edgecascade.shared.config import MqttSettings
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Collector:
    """Subscribes to filters and keeps every message received, thread-safely."""

    def __init__(self, settings: MqttSettings, *filters: str, client_id: str = "collector") -> None:
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self.link = MqttLink(settings, client_id, on_message=self._add)
        for topic_filter in filters:
            self.link.subscribe(topic_filter)

    def __enter__(self) -> Collector:
        self.link.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()

    def _add(self, message: Received) -> None:
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)


def publish_all(settings: MqttSettings, messages: list[Outgoing], client_id: str = "pub") -> None:
    """Publish and wait for every PUBACK."""
    link = MqttLink(settings, client_id, persistent=False)
    link.connect()
    try:
        for message in messages:
            assert link.confirm(link.publish(message), 10), f"no PUBACK for {message.topic}"
    finally:
        link.stop()
