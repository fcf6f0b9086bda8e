"""What the contract accepts, the database stores: fuzzed messages into SQLite and PostgreSQL.

The decoders are the only gate between a device and the cloud's tables. A value that passes them
but not the database (NaN in a JSON column, NUL in a text column, an integer wider than its
column) made the ingest reject the whole message, and a gateway batch is up to 500 results of
many devices: one hostile device cost its neighbours their results. Here every fuzzed message the
decoder accepts is written by the real store and must be there afterwards, alongside a good one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from sqlalchemy import func, select

from edgecascade.cloud.db.models import Escalation, ModelAck, Result, Telemetry
from edgecascade.cloud.services import open_services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter, decode_inbound
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.errors import ContractError
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import (
    BatchedResult,
    Message,
    ResultBatchMessage,
    TelemetryRollupMessage,
)
from edgecascade.shared.topics import Kind, Topic
from tests.fuzz.strategies import CLOUD_STORED, SCALE, Sample, mutated_document
from tests.utils.factories import make_result

TABLES = {
    Kind.RESULT: Result,
    Kind.RESULT_BATCH: Result,
    Kind.ESCALATION: Escalation,
    Kind.TELEMETRY: Telemetry,
    Kind.TELEMETRY_ROLLUP: Telemetry,
    Kind.MODEL: ModelAck,
}


def fresh(message: Message) -> Message:
    """The message under new ids: a mutation that kept the sample's ids would otherwise be
    skipped as already stored, and its values would never reach the database."""
    if isinstance(message, ResultBatchMessage):
        results = [
            BatchedResult(device=e.device, result=e.result.model_copy(update={"msg_id": _id()}))
            for e in message.results
        ]
        return message.model_copy(update={"msg_id": _id(), "results": results})
    if isinstance(message, TelemetryRollupMessage):
        last = message.last.model_copy(update={"msg_id": _id()})
        return message.model_copy(update={"msg_id": _id(), "last": last})
    return message.model_copy(update={"msg_id": _id()})


def _id() -> str:
    return new_message_id()


@pytest.mark.parametrize("sample", CLOUD_STORED, ids=[s.topic.kind.value for s in CLOUD_STORED])
def test_every_accepted_message_is_stored(
    sample: Sample, database_url: str, tmp_path: Path
) -> None:
    services = open_services(
        CloudSettings(database_url=database_url, data_dir=tmp_path / "cloud"), start_ingest=False
    )
    writer = StoreWriter(services.engine, services.blobs)
    accepted = 0
    try:

        @settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
        @given(document=mutated_document(sample))
        @example(document=sample.document)  # most mutations of a batch break it: one that holds
        def fuzz(document: dict[str, object]) -> None:
            nonlocal accepted
            try:
                decoded = decode(sample.topic, sample.payload(document))
                message = fresh(decoded.message)
                body = decoded.body if sample.body is not None else None
                item = decode_inbound(sample.topic, encode(message, body), 0.0)
            except ContractError:
                return
            good_topic = Topic(sample.topic.site, "good-cam", Kind.RESULT)
            good = make_result()
            neighbour = decode_inbound(good_topic, encode(good), time.time())
            writer.write([item, neighbour])  # one transaction, as the ingest writes a batch
            accepted += 1
            with services.engine.connect() as conn:
                assert conn.scalar(select(Result.msg_id).where(Result.msg_id == good.msg_id))
                table = TABLES.get(sample.topic.kind)
                if isinstance(message, ResultBatchMessage):
                    ids = [entry.result.msg_id for entry in message.results]
                    stored = conn.scalar(
                        select(func.count()).select_from(Result).where(Result.msg_id.in_(ids))
                    )
                    assert stored == len(set(ids))
                elif table is not None:
                    key = (
                        message.last.msg_id
                        if isinstance(message, TelemetryRollupMessage)
                        else (message.msg_id)
                    )
                    column = table.__table__.c.msg_id
                    assert conn.scalar(select(column).where(column == key))

        fuzz()
    finally:
        services.close()
    assert accepted > 0, "the fuzzer should also produce messages the contract accepts"
