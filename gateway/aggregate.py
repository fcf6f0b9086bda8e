"""What the gateway sums up: result batches, telemetry rollups and the site's latest state.

Batching happens when the uplink sends, not when results arrive: every result is committed to the
outbox (and acknowledged to the device) on its own, and the sender wraps whatever results are
queued into one :class:`ResultBatchMessage`. A fast uplink sends small batches soon; a backlog after
an outage goes up in large ones. A batch sent again after a crash carries the same results, which
the cloud stores once by their own message ids.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from edgecascade.shared.codec import compress_batch
from edgecascade.shared.contract import OutboxClass
from edgecascade.shared.messages import (
    FieldStats,
    ResultBatchMessage,
    StateMessage,
    TelemetryMessage,
    TelemetryRollupMessage,
)
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import Row
from edgecascade.shared.topics import Kind, topic

ENTRY_OVERHEAD = 96  # bytes around each result in a batch: {"device":"<id>","result":...},


class ResultBatcher:
    """The uplink sender's ``coalesce``: consecutive queued results become one batch message."""

    def __init__(
        self,
        site: str,
        gateway_id: str,
        prefix: str,
        max_results: int,
        max_bytes: int,
        compress: bool = False,
    ) -> None:
        self._topic = topic(site, gateway_id, Kind.RESULT_BATCH, prefix=prefix)
        self.max_results = max_results
        self.max_bytes = max_bytes  # of the batch's JSON, before any compression
        self.compress = compress
        self.results_in = 0
        self.messages_out = 0

    def __call__(self, rows: list[Row]) -> list[tuple[Outgoing, list[Row]]]:
        out: list[tuple[Outgoing, list[Row]]] = []
        group: list[Row] = []
        size = 0

        def flush() -> None:
            nonlocal group, size
            if group:
                out.append((self._batch(group), group))
            group, size = [], 0

        for row in rows:
            if row.klass != OutboxClass.RESULT:
                flush()
                out.append((row.message, [row]))
                continue
            entry = len(row.message.payload) + ENTRY_OVERHEAD
            if len(group) >= self.max_results or size + entry > self.max_bytes:
                flush()
            group.append(row)
            size += entry
        flush()
        self.messages_out += len(out)
        self.results_in += sum(1 for row in rows if row.klass == OutboxClass.RESULT)
        return out

    def _batch(self, rows: list[Row]) -> Outgoing:
        if len(rows) == 1:
            return rows[0].message
        # Each result was validated at intake and is stored as its JSON: splice those bytes into
        # the batch instead of parsing and serialising every result again. The envelope is the
        # model's own (schema version, a fresh msg_id, ts); the cloud validates the whole batch.
        envelope = ResultBatchMessage.model_construct(results=[])
        head = envelope.model_dump_json(exclude={"results"}).encode()
        entries = b",".join(
            b'{"device":"%s","result":%s}'
            % (
                row.message.topic.split("/")[3].encode(),
                row.message.payload,
            )  # <p>/v1/<site>/<device>
            for row in rows
        )
        payload = head[:-1] + b',"results":[' + entries + b"]}"
        return Outgoing(self._topic, compress_batch(payload) if self.compress else payload, qos=1)


def flatten(message: TelemetryMessage) -> dict[str, float]:
    """Every numeric field of a telemetry sample under a dotted name."""
    values: dict[str, float] = {
        "cpu_percent": message.cpu_percent,
        "memory_percent": message.memory_percent,
        "memory_rss_mb": message.memory_rss_mb,
        "fps": message.fps,
        "frames": float(message.frames),
    }
    if message.temperature_c is not None:
        values["temperature_c"] = message.temperature_c
    for stage, p in message.latency_ms.items():
        values.update(
            {
                f"latency_ms.{stage}.p50": p.p50,
                f"latency_ms.{stage}.p95": p.p95,
                f"latency_ms.{stage}.p99": p.p99,
            }
        )
    values.update({f"queues.{k}": float(v) for k, v in message.queues.items()})
    values.update({f"counters.{k}": float(v) for k, v in message.counters.items()})
    return values


@dataclass
class _Window:
    start: float
    samples: list[TelemetryMessage] = field(default_factory=list)


class TelemetryRollup:
    """Per device, the samples of the current window; summarised when the window closes.

    Samples of an open window live in memory: telemetry travels at QoS 0 and a gateway restart
    costs at most one window of it, never a result or an escalation.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def add(self, device: str, message: TelemetryMessage, now: float) -> None:
        with self._lock:
            self._windows.setdefault(device, _Window(now)).samples.append(message)

    def due(self, now: float, everything: bool = False) -> list[tuple[str, TelemetryRollupMessage]]:
        """Rollups of the windows that have closed (all of them with ``everything``)."""
        with self._lock:
            closed = [
                d for d, w in self._windows.items() if everything or now - w.start >= self.window_s
            ]
            windows = [(d, self._windows.pop(d)) for d in closed]
        return [(device, summarise(w.samples, w.start, now)) for device, w in windows]


def summarise(samples: list[TelemetryMessage], start: float, end: float) -> TelemetryRollupMessage:
    series: dict[str, list[float]] = {}
    for sample in samples:
        for name, value in flatten(sample).items():
            series.setdefault(name, []).append(value)
    # The mean as a sum of shares: finite for any finite samples (a plain sum of two samples
    # near the float maximum is infinite, which the contract refuses).
    stats = {
        name: FieldStats(min=min(v), mean=sum(x / len(v) for x in v), max=max(v), last=v[-1])
        for name, v in series.items()
    }
    return TelemetryRollupMessage(
        window_start=start, window_end=end, samples=len(samples), fields=stats, last=samples[-1]
    )


class SiteState:
    """The latest state and telemetry of every device of the site, for ``resync``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.states: dict[str, StateMessage] = {}
        self._telemetry: dict[str, TelemetryMessage] = {}
        self._last_seen: dict[str, float] = {}

    def saw(self, device: str, now: float) -> None:
        with self._lock:
            self._last_seen[device] = now

    def state(self, device: str, message: StateMessage) -> None:
        with self._lock:
            self.states[device] = message

    def telemetry(self, device: str, message: TelemetryMessage) -> None:
        with self._lock:
            self._telemetry[device] = message

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            devices = sorted(set(self.states) | set(self._telemetry) | set(self._last_seen))
            return {
                device: {
                    "state": _dump(self.states.get(device)),
                    "telemetry": _dump(self._telemetry.get(device)),
                    "last_seen": self._last_seen.get(device),
                }
                for device in devices
            }


def _dump(message: StateMessage | TelemetryMessage | None) -> dict[str, Any] | None:
    return None if message is None else message.model_dump(mode="json")
