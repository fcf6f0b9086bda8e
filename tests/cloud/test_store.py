"""The write path and the API on SQLite and PostgreSQL: migrations, idempotency, blobs, queries."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select

from edgecascade.cloud.blobs import blob_key
from edgecascade.cloud.db.migrate import current_revision, head_revision, upgrade
from edgecascade.cloud.db.models import Base, Device, Escalation, ModelAck, Result, Site, Telemetry
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import Inbound, StoreWriter, check_storable, decode_inbound
from edgecascade.gateway.aggregate import summarise
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.contract import spec_for, stored_specs
from edgecascade.shared.errors import ContractError
from edgecascade.shared.topics import Kind, Topic
from tests.cloud.conftest import ApiClient, inbound
from tests.fuzz.strategies import SAMPLES
from tests.utils.factories import (
    make_batch,
    make_escalation,
    make_result,
    make_state,
    make_telemetry,
)


def writer(services: Services) -> StoreWriter:
    return StoreWriter(services.engine, services.blobs)


def count(services: Services, entity: type[Base]) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(entity)) or 0


def test_migrations_reach_head_and_match_the_models(services: Services) -> None:
    upgrade(services.settings.db_url)  # a second run is a no-op
    assert current_revision(services.engine) == head_revision() == "0015"
    with services.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
        default_schema = inspect(conn).default_schema_name
    assert diff == []
    assert {
        "sites",
        "devices",
        "results",
        "escalations",
        "telemetry",
        "verdicts",
        "api_tokens",
    } <= tables
    if services.engine.dialect.name == "postgresql":
        assert default_schema is not None and default_schema.startswith("t_")  # the URL's schema
        with services.engine.connect() as conn:
            assert "results" not in inspect(conn).get_table_names(schema="public")


def test_replayed_results_are_stored_once(services: Services) -> None:
    results = [make_result("s1", "cam-1") for _ in range(5)]
    batch = [inbound("s1", "cam-1", Kind.RESULT, r) for r in results]

    first = writer(services).write(batch + batch[:2])  # duplicates inside one batch, too
    assert (first.stored, first.duplicates) == (5, 2)
    extra_result = make_result("s1", "cam-1")
    extra = inbound("s1", "cam-1", Kind.RESULT, extra_result)
    replay = writer(services).write([*batch, extra])
    assert (replay.stored, replay.duplicates) == (1, 5)

    with services.sessions() as session:
        stored = session.scalars(select(Result.msg_id).order_by(Result.msg_id)).all()
        row = session.get(Result, results[0].msg_id)
    assert stored == sorted([r.msg_id for r in results] + [extra_result.msg_id])
    assert row is not None
    assert (row.site_id, row.device_id, row.label, row.label_index) == ("s1", "cam-1", "cat", 0)
    assert row.top[0] == {"index": 0, "label": "cat", "score": 0.9}
    assert row.latency["invoke"] == 12.0


def test_every_stored_row_of_the_contract_is_written_and_nothing_else(services: Services) -> None:
    """One valid sample of each kind: the rows marked stored are taken and written (state as
    the device's status, the rest as rows); every other kind is refused before a transaction."""
    items = []
    for sample in SAMPLES:
        topic, payload = sample.topic, sample.payload()
        if spec_for(topic).stored:
            items.append(decode_inbound(topic, payload, 0.0))
        else:
            with pytest.raises(ContractError, match="does not store"):
                decode_inbound(topic, payload, 0.0)
    assert {spec_for(item.topic).pattern for item in items} == {
        spec.pattern for spec in stored_specs()
    }
    first = writer(services).write(items)
    again = writer(services).write(items)
    assert (again.stored, again.duplicates) == (0, first.stored + first.duplicates)
    for entity in (Result, Escalation, Telemetry, ModelAck):
        assert count(services, entity) == 1, entity  # the samples share their ids
    with services.sessions() as session:
        device = session.get(Device, ("site1", "cam1"))
    assert device is not None and device.status == "online"


def test_results_decoded_to_models_are_refused_before_the_transaction() -> None:
    """The store takes results as dicts (decode_inbound); a model would be a programming error,
    caught where the item is checked, not half way through a batch's transaction."""
    topic = Topic("s1", "cam-1", Kind.RESULT)
    item = Inbound(topic, decode(topic, encode(make_result("s1", "cam-1"))), 0.0)
    with pytest.raises(ContractError, match="decode_inbound"):
        check_storable(item)


def test_gateway_batch_stores_one_row_per_result(services: Services) -> None:
    entries = [
        ("cam-1", make_result("s2", "cam-1")),
        ("cam-2", make_result("s2", "cam-2", label="dog")),
        ("cam-2", make_result("s2", "cam-2")),
    ]
    batch = inbound("s2", "gateway", Kind.RESULT_BATCH, make_batch("s2", entries))
    assert writer(services).write([batch]).stored == 3
    assert writer(services).write([batch]).duplicates == 3

    with services.sessions() as session:
        rows = session.execute(select(Result.site_id, Result.device_id, Result.label)).all()
        devices = session.scalars(select(Device).order_by(Device.device_id)).all()
    assert sorted(rows) == [("s2", "cam-1", "cat"), ("s2", "cam-2", "cat"), ("s2", "cam-2", "dog")]
    assert [(d.device_id, d.status) for d in devices] == [
        ("cam-1", "unknown"),
        ("cam-2", "unknown"),
    ]
    assert count(services, Result) == 3


def test_telemetry_rollup_stores_its_last_sample_with_the_summary(services: Services) -> None:
    samples = [make_telemetry(cpu_percent=cpu) for cpu in (10.0, 30.0)]
    rollup = summarise(samples, 100.0, 130.0)
    item = inbound("s1", "cam-1", Kind.TELEMETRY_ROLLUP, rollup)
    assert writer(services).write([item]).stored == 1
    assert writer(services).write([item]).duplicates == 1
    with services.sessions() as session:
        row = session.scalars(select(Telemetry)).one()
    assert row.msg_id == samples[1].msg_id and row.cpu_percent == 30.0
    assert row.payload["rollup"]["samples"] == 2
    assert row.payload["rollup"]["fields"]["cpu_percent"] == {
        "min": 10.0,
        "mean": 20.0,
        "max": 30.0,
        "last": 30.0,
    }


def test_state_upserts_the_device(services: Services) -> None:
    online = make_state("s1", "cam-1", session=1000, ts=100.0)
    w = writer(services)
    w.write([inbound("s1", "cam-1", Kind.STATE, online)])
    w.write([inbound("s1", "cam-1", Kind.RESULT, make_result("s1", "cam-1", ts=150.0))])
    # The LWT was composed before the birth, so it is older; it is still the later event.
    lwt = make_state("s1", "cam-1", status="offline", session=1000, ts=99.0)
    w.write([inbound("s1", "cam-1", Kind.STATE, lwt)])
    # A late state of an earlier session changes nothing.
    stale = make_state("s1", "cam-1", session=500, ts=200.0, software="old")
    w.write([inbound("s1", "cam-1", Kind.STATE, stale)])

    with services.sessions() as session:
        device = session.get(Device, ("s1", "cam-1"))
        site = session.get(Site, "s1")
    assert device is not None and site is not None
    assert (device.status, device.session, device.role) == ("offline", 1000, "agent")
    assert (device.model_name, device.model_version) == ("mobilenet_v2", "1.0.0")
    assert device.software == "edgecascade 0.1.0"
    assert (device.first_seen, device.last_seen) == (99.0, 200.0)
    assert (site.first_seen, site.last_seen) == (99.0, 200.0)


def test_escalation_writes_blob_then_row(services: Services) -> None:
    header, jpeg = make_escalation("s1", "cam-1", width=32, height=24)
    item = inbound("s1", "cam-1", Kind.ESCALATION, header, jpeg)
    assert writer(services).write([item]).stored == 1
    assert writer(services).write([item]).duplicates == 1

    with services.sessions() as session:
        row = session.get(Escalation, header.msg_id)
    assert row is not None
    assert row.blob_path == f"s1/cam-1/{header.msg_id}.jpg"
    assert services.blobs.get(row.blob_path) == jpeg
    assert (row.result_id, row.width, row.height) == (header.result_id, 32, 24)
    assert (row.edge_label, row.reason) == ("cat", "low_confidence")
    root = services.settings.blob_dir
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_telemetry_is_stored(services: Services) -> None:
    msg = make_telemetry("s1", "cam-1", fps=9.5)
    assert writer(services).write([inbound("s1", "cam-1", Kind.TELEMETRY, msg)]).stored == 1
    with services.sessions() as session:
        row = session.get(Telemetry, msg.msg_id)
    assert row is not None
    assert (row.fps, row.frames, row.payload["memory_rss_mb"]) == (9.5, 1000, 120.0)


def test_blob_keys_refuse_unsafe_ids() -> None:
    with pytest.raises(ContractError, match="blob path"):
        blob_key("..", "cam-1", "0" * 36, "image/jpeg")
    assert blob_key("s", "d", "m", "image/png") == "s/d/m.png"


# -- API ---------------------------------------------------------------------------------------
def app_services(client: ApiClient) -> Services:
    return client.services


def test_api_results_filters_and_pagination(client: ApiClient) -> None:
    placed = {  # name: (site, device, result)
        "a1": ("s1", "cam-1", make_result(captured_at=10.0)),
        "a2": ("s1", "cam-1", make_result(captured_at=20.0, label="dog", escalated=True)),
        "a3": ("s1", "cam-2", make_result(captured_at=30.0)),
        "b1": ("s2", "cam-1", make_result(captured_at=15.0, label="dog")),
        "b2": ("s2", "cam-1", make_result(captured_at=25.0)),
    }
    writer(app_services(client)).write(
        [inbound(site, device, Kind.RESULT, r) for site, device, r in placed.values()]
    )
    ids = {name: r.msg_id for name, (_s, _d, r) in placed.items()}

    def query(**params: str | float | bool) -> tuple[list[str], int]:
        response = client.get("/api/results", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        names = {v: k for k, v in ids.items()}
        return [names[item["msg_id"]] for item in body["items"]], body["total"]

    assert query() == (["a1", "b1", "a2", "b2", "a3"], 5)
    assert query(site="s1") == (["a1", "a2", "a3"], 3)
    assert query(site="s1", device="cam-1") == (["a1", "a2"], 2)
    assert query(since=15.0, until=30.0) == (["b1", "a2", "b2"], 3)
    assert query(label="dog") == (["b1", "a2"], 2)
    assert query(escalated=True) == (["a2"], 1)
    assert query(escalated=False, site="s2") == (["b1", "b2"], 2)
    assert query(limit=2) == (["a1", "b1"], 5)
    assert query(limit=2, offset=2) == (["a2", "b2"], 5)
    assert query(limit=2, offset=4) == (["a3"], 5)
    assert query(offset=10) == ([], 5)

    first = client.get("/api/results", params={"limit": 1}).json()
    assert (first["limit"], first["offset"]) == (1, 0)
    assert first["items"][0]["site"] == "s1" and first["items"][0]["device"] == "cam-1"
    assert first["items"][0]["top"][0] == {"index": 0, "label": "cat", "score": 0.9}
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
        assert client.get("/api/results", params=bad).status_code == 422


def test_api_devices_lists_state_and_result_counts(client: ApiClient) -> None:
    w = writer(app_services(client))
    w.write(
        [
            inbound("s1", "cam-1", Kind.STATE, make_state("s1", "cam-1")),
            *(inbound("s1", "cam-1", Kind.RESULT, make_result("s1", "cam-1")) for _ in range(3)),
            inbound("s2", "cam-9", Kind.TELEMETRY, make_telemetry("s2", "cam-9")),
        ]
    )
    body = client.get("/api/devices").json()
    summary = [
        (d["site"], d["device"], d["status"], d["model_version"], d["result_count"])
        for d in body["items"]
    ]
    assert summary == [("s1", "cam-1", "online", "1.0.0", 3), ("s2", "cam-9", "unknown", None, 0)]
    only = client.get("/api/devices", params={"site": "s2"}).json()["items"]
    assert [d["device"] for d in only] == ["cam-9"]


def test_healthz_reports_database_and_no_ingest(client: ApiClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "mqtt": None}


def test_a_device_clock_hours_off_is_recorded_as_skew_and_capture_times_stay_its_own(
    services: Services,
) -> None:
    """A Pi without a real-time clock, 10 h behind: the cloud keeps its capture times as sent
    and records how far off its clock is (receive time minus send time of its state)."""
    received = 1_900_000_000.0
    behind = received - 10 * 3600
    state = make_state("s1", "cam-9", ts=behind)
    result = make_result("s1", "cam-9", captured_at=behind, ts=behind)
    writer(services).write(
        [
            decode_inbound(Topic("s1", "cam-9", Kind.STATE), encode(state), received),
            decode_inbound(Topic("s1", "cam-9", Kind.RESULT), encode(result), received),
        ]
    )
    with services.sessions() as session:
        device = session.get(Device, ("s1", "cam-9"))
        row = session.get(Result, result.msg_id)
    assert device is not None and device.clock_skew_s == 10 * 3600
    assert row is not None and (row.captured_at, row.received_at) == (behind, received)
