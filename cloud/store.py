"""The write path: decoded messages in, idempotent rows (and frame files) out.

:class:`StoreWriter` writes one batch in one transaction. Frames are written to the blob store
*before* the transaction, so a committed escalation row always points at a complete file (a failed
transaction can leave an orphan file, which a replay reuses). Every row is keyed by its message id,
so writing the same batch twice stores it once: this is what makes at-least-once delivery
exactly-once in effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine

from edgecascade.cloud.blobs import BlobStore, blob_key
from edgecascade.cloud.db.conditions import apply_condition, condition_row
from edgecascade.cloud.db.models import Base, Escalation, ModelAck, Result, Telemetry
from edgecascade.cloud.db.rows import (
    Row,
    box_key,
    detection_rows,
    escalation_row,
    model_ack_row,
    result_row,
    state_row,
    telemetry_row,
)
from edgecascade.cloud.db.upsert import adopt_tags, apply_state, insert_boxes, insert_new, touch
from edgecascade.shared import dicts
from edgecascade.shared.codec import Decoded, decode, decode_results
from edgecascade.shared.contract import spec_for
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import (
    EscalationHeader,
    Message,
    StateMessage,
    TelemetryMessage,
    TelemetryRollupMessage,
)
from edgecascade.shared.model_messages import ModelAckMessage
from edgecascade.shared.topics import Kind, Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResultDicts:
    """The results of a ``result`` or ``result_batch`` message as dicts, each with its device."""

    results: list[tuple[str, dicts.ResultMessage]]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A decoded message, the topic it came on and when the cloud received it."""

    topic: Topic
    decoded: Decoded | ResultDicts
    received_at: float


def decode_inbound(topic: Topic, payload: bytes, received_at: float) -> Inbound:
    """``payload`` decoded the way the store takes it, or :class:`ContractError` (or its
    :class:`~shared.errors.FrameCodecError`) naming the problem.

    Results are decoded to dicts (:func:`shared.codec.decode_results`), everything else to its
    model (:func:`shared.codec.decode`).
    """
    if topic.kind in _RESULT_KINDS:
        item = Inbound(topic, ResultDicts(decode_results(topic, payload)), received_at)
    else:
        item = Inbound(topic, decode(topic, payload), received_at)
    check_storable(item)
    return item


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What one batch did: new rows, and rows that were already stored (replays)."""

    stored: int = 0
    duplicates: int = 0


class BatchWriter(Protocol):
    """What the ingest loop needs from a store: write a batch atomically, or raise."""

    def write(self, items: Sequence[Inbound]) -> WriteOutcome: ...


def check_storable(item: Inbound) -> None:
    """Raise :class:`ContractError` for a valid message the store still cannot take."""
    spec = spec_for(item.topic)
    if not spec.stored:
        raise ContractError(f"the cloud does not store {spec.pattern!r} messages")
    if isinstance(item.decoded, ResultDicts):
        return
    header = item.decoded.message
    if item.topic.kind in _RESULT_KINDS:
        raise ContractError("results are stored decoded to dicts (decode_inbound), not as models")
    if not isinstance(header, spec.model):
        raise ContractError(
            f"{spec.pattern} carries {spec.model.__name__}, not {type(header).__name__}"
        )
    if isinstance(header, EscalationHeader):
        blob_key(item.topic.site, item.topic.device, header.msg_id, header.content_type)


@dataclass
class _Plan:
    """The rows, frames and state changes of one batch, de-duplicated by message id."""

    rows: dict[type[Base], dict[str, Row]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    states: list[Row] = field(default_factory=list)
    tags: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # provisioned
    boxes: dict[tuple[str, str, int], Row] = field(default_factory=dict)
    conditions: list[Row] = field(default_factory=list)  # the states' detail, for the alerts
    seen: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    considered: int = 0

    def add_row(self, entity: type[Base], row: Row) -> None:
        self.considered += 1
        self.rows.setdefault(entity, {}).setdefault(row["msg_id"], row)

    def saw(self, site: str, device: str, first: float, last: float | None = None) -> None:
        """``device`` sent messages from time ``first`` to ``last`` (default: one, at ``first``)."""
        last = first if last is None else last
        old_first, old_last = self.seen.get((site, device), (first, last))
        self.seen[(site, device)] = (min(first, old_first), max(last, old_last))

    def add(self, item: Inbound) -> None:
        site, device, when = item.topic.site, item.topic.device, item.received_at
        if isinstance(item.decoded, ResultDicts):
            # A batch's results name their devices; the gateway that sent it is not one of them.
            times: dict[str, list[float]] = {}
            for result_device, result in item.decoded.results:
                self.add_row(Result, result_row(site, result_device, result, when))
                for box in detection_rows(site, result_device, result):
                    self.boxes.setdefault(box_key(box), box)
                times.setdefault(result_device, []).append(result["ts"])
            for result_device, ts in times.items():
                self.saw(site, result_device, min(ts), max(ts))
            return
        msg = item.decoded.message
        add = _ADD.get(item.topic.kind)
        if add is None:
            raise ContractError(f"the cloud does not store {type(msg).__name__}")
        add(self, site, device, item, msg)
        self.saw(site, device, msg.ts)

    def escalation(self, site: str, device: str, item: Inbound, msg: Message) -> None:
        assert isinstance(msg, EscalationHeader) and isinstance(item.decoded, Decoded)
        key = blob_key(site, device, msg.msg_id, msg.content_type)
        self.blobs[key] = item.decoded.body
        self.add_row(Escalation, escalation_row(site, device, msg, item.received_at, key))

    def telemetry(self, site: str, device: str, item: Inbound, msg: Message) -> None:
        assert isinstance(msg, TelemetryMessage)
        self.add_row(Telemetry, telemetry_row(site, device, msg, item.received_at))

    def rollup(self, site: str, device: str, item: Inbound, msg: Message) -> None:
        """The window's newest sample is the row (idempotent by its id); the summary rides along."""
        assert isinstance(msg, TelemetryRollupMessage)
        row = telemetry_row(site, device, msg.last, item.received_at)
        summary = msg.model_dump(
            mode="json", include={"window_start", "window_end", "samples", "fields"}
        )
        row["payload"] = {**row["payload"], "rollup": summary}
        self.add_row(Telemetry, row)

    def state(self, site: str, device: str, item: Inbound, msg: Message) -> None:
        assert isinstance(msg, StateMessage)
        self.states.append(state_row(site, device, msg, item.received_at))
        self.conditions.append(condition_row(site, device, msg))
        if msg.tags:
            self.tags[(site, device)] = list(msg.tags)

    def model_ack(self, site: str, device: str, item: Inbound, msg: Message) -> None:
        assert isinstance(msg, ModelAckMessage)
        self.add_row(ModelAck, model_ack_row(site, device, msg, item.received_at))


_RESULT_KINDS = frozenset({Kind.RESULT, Kind.RESULT_BATCH})
# How each stored kind other than results becomes rows: every row of shared.contract.KINDS with
# ``stored`` has an entry here or in _RESULT_KINDS (tests/cloud/test_store.py checks it). The
# message's type was checked against its row by check_storable.
_ADD: dict[Kind, Callable[[_Plan, str, str, Inbound, Message], None]] = {
    Kind.ESCALATION: _Plan.escalation,
    Kind.TELEMETRY: _Plan.telemetry,
    Kind.TELEMETRY_ROLLUP: _Plan.rollup,
    Kind.STATE: _Plan.state,
    Kind.MODEL: _Plan.model_ack,
}


class StoreWriter:
    """Writes batches of inbound messages to the database and the blob store."""

    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self._engine = engine
        self._blobs = blobs

    def write(self, items: Sequence[Inbound]) -> WriteOutcome:
        """Store ``items`` in one transaction; raises SQLAlchemy or OS errors unchanged."""
        plan = _Plan()
        for item in items:
            plan.add(item)
        for key, data in plan.blobs.items():
            self._blobs.put(key, data)
        stored = 0
        with self._engine.begin() as conn:
            for entity, rows in plan.rows.items():
                stored += insert_new(conn, entity, list(rows.values()))
            insert_boxes(conn, list(plan.boxes.values()))
            touch(conn, plan.seen)
            for state in plan.states:
                apply_state(conn, state)
            for condition in plan.conditions:
                apply_condition(conn, condition)
            adopt_tags(conn, plan.tags)
        return WriteOutcome(stored=stored, duplicates=plan.considered - stored)
