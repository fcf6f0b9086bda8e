"""What a broker carried during the run: every message on the suite's filters, with its arrival
time, decoded against the contract on demand.

The checks never sleep for a fixed time: they wait on a condition over what has arrived
(:meth:`Recorder.wait`), which wakes on every new message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

from edgecascade.shared.codec import Decoded, decode
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import ContractError
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.topics import Kind, Topic

T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    """One message as it arrived, with the suite's clock and its parsed topic (None: the topic
    is not the contract's)."""

    at: float
    message: Received
    topic: Topic | None

    def is_(self, kind: Kind, device: str | None = None, sub: str | None = None) -> bool:
        t = self.topic
        return (
            t is not None
            and t.kind is kind
            and (device is None or t.device == device)
            and (sub is None or t.sub == sub)
        )

    @cached_property
    def _decoding(self) -> Decoded | ContractError:
        if self.topic is None:
            return ContractError(f"topic {self.message.topic!r} is not the contract's")
        try:
            return decode(self.topic, self.message.payload)
        except ContractError as exc:
            return exc

    def decoded(self) -> Decoded:
        """The payload validated against the contract (once; the checks ask often);
        :class:`ContractError` names the fault."""
        outcome = self._decoding
        if isinstance(outcome, ContractError):
            raise outcome
        return outcome


class Recorder:
    """One connection to a broker that keeps every message on ``filters``."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *filters: str,
        then: Callable[[Seen], None] | None = None,
    ) -> None:
        """``then`` is called with every message after it is recorded (paho's thread)."""
        self._then = then
        self._seen: list[Seen] = []
        self._changed = threading.Condition()
        self.link = MqttLink(settings, client_id, on_message=self._add, persistent=False)
        for topic_filter in filters:
            self.link.subscribe(topic_filter)

    def start(self) -> None:
        self.link.connect()

    def stop(self) -> None:
        self.link.stop()

    def publish(self, message: Outgoing, timeout: float = 10.0) -> None:
        """Publish and wait for the broker's PUBACK."""
        info = self.link.publish(message)
        if message.qos and not self.link.confirm(info, timeout):
            raise ContractError(f"no PUBACK for {message.topic} within {timeout:g} s")

    def _add(self, message: Received) -> None:
        try:
            parsed: Topic | None = Topic.parse(message.topic)
        except ContractError:
            parsed = None
        seen = Seen(time.time(), message, parsed)
        with self._changed:
            self._seen.append(seen)
            self._changed.notify_all()
        if self._then is not None:
            self._then(seen)

    def seen(
        self, where: Callable[[Seen], bool] = lambda s: True, since: float = 0.0
    ) -> list[Seen]:
        with self._changed:
            return [s for s in self._seen if s.at >= since and where(s)]

    def wait(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        """``probe()`` once it returns something other than None (tried again after every new
        message, and at least every 0.5 s), or None at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                count = len(self._seen)
            found = probe()
            left = deadline - time.monotonic()
            if found is not None or left <= 0:
                return found
            self._wait_past(count, min(left, 0.5))

    def _wait_past(self, count: int, timeout: float) -> None:
        """Until more than ``count`` messages have arrived, or ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._seen) != count, timeout)
