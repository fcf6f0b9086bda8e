"""Retention on SQLite and PostgreSQL: ages and a size limit enforced, and what must be kept kept
(a frame awaiting its verdict, one a person labelled, every frame while a training run exports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from edgecascade.cloud.blobs import BlobNotFound
from edgecascade.cloud.db.alert_models import Alert
from edgecascade.cloud.db.models import (
    Escalation,
    LabelOverride,
    Result,
    Telemetry,
    TrainingRun,
    Verdict,
)
from edgecascade.cloud.retention import DAY, Purger
from edgecascade.cloud.retention_settings import RetentionSection
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import StoreWriter, decode_inbound
from edgecascade.shared.codec import encode
from edgecascade.shared.topics import Kind, Topic
from tests.utils.factories import make_escalation, make_result, make_telemetry

NOW = 1_900_000_000.0


def store(services: Services, kind: Kind, message: Any, body: bytes | None, at: float) -> None:
    item = decode_inbound(Topic("s1", "cam1", kind), encode(message, body), at)
    StoreWriter(services.engine, services.blobs).write([item])


def escalation(services: Services, age_days: float, *, judged: bool, labelled: bool = False) -> str:
    header, jpeg = make_escalation("s1", "cam1")
    at = NOW - age_days * DAY
    store(services, Kind.ESCALATION, header, jpeg, at)
    with services.sessions() as session:
        if judged:
            session.add(
                Verdict(
                    escalation_id=header.msg_id,
                    msg_id=make_result().msg_id,
                    result_id=header.result_id,
                    site_id="s1",
                    device_id="cam1",
                    created_at=at,
                    worker_id="w1",
                    model_name="cloud",
                    model_version="2",
                    model_sha256="0" * 64,
                    label="dog",
                    label_index=1,
                    score=0.9,
                    top=[{"index": 1, "label": "dog", "score": 0.9}],
                    edge_model_name="edge",
                    edge_model_version="1",
                    edge_label="cat",
                    edge_score=0.4,
                    agrees=False,
                    inference_ms=1.0,
                )
            )
        if labelled:
            session.add(
                LabelOverride(
                    escalation_id=header.msg_id,
                    label="bird",
                    created_by="ops",
                    created_at=at,
                    note="",
                )
            )
        session.commit()
    return header.msg_id


def frame_kept(services: Services, esc_id: str) -> bool:
    with services.sessions() as session:
        row = session.get(Escalation, esc_id)
        assert row is not None  # the row always stays
        try:
            services.blobs.get(row.blob_path)
        except BlobNotFound:
            assert row.frame_purged_at is not None
            return False
        return row.frame_purged_at is None


def count(services: Services, entity: Any) -> int:
    with services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(entity)) or 0)


def test_ages_are_enforced_and_what_is_needed_is_kept(services: Services) -> None:
    for age in (400, 2):
        store(
            services, Kind.RESULT, make_result("s1", "cam1", captured_at=NOW - age * DAY), None, NOW
        )
    old_judged = escalation(services, 40, judged=True)
    old_pending = escalation(services, 40, judged=False)
    old_labelled = escalation(services, 40, judged=True, labelled=True)
    young_judged = escalation(services, 5, judged=True)
    start = int(NOW - 3 * DAY) // 300 * 300  # an hour from a 5-minute boundary, every 10 s
    for ts in range(start, start + 3600, 10):
        store(services, Kind.TELEMETRY, make_telemetry(ts=float(ts)), None, float(ts))
    store(services, Kind.TELEMETRY, make_telemetry(ts=NOW - 100 * DAY), None, NOW)
    with services.sessions() as session:
        session.add(
            Alert(
                id=make_result().msg_id,
                rule="r",
                kind="offline",
                state="resolved",
                since=NOW - 200 * DAY,
                resolved_at=NOW - 190 * DAY,
                message="m",
                updated_at=NOW - 190 * DAY,
            )
        )
        session.commit()
    purger = Purger(services.engine, services.blobs, RetentionSection())
    report = purger.purge(NOW)
    assert report.purged["results"] == 1 and count(services, Result) == 1
    assert report.purged["frames"] == 1
    assert not frame_kept(services, old_judged)
    assert frame_kept(services, old_pending)  # no verdict yet: a worker still needs it
    assert frame_kept(services, old_labelled)  # a person's label: training data
    assert frame_kept(services, young_judged)
    # 360 samples of one hour thinned to one per 5 minutes; the 100-day-old one deleted.
    assert report.purged["telemetry"] == 1 and count(services, Telemetry) == 12
    assert report.purged["alerts"] == 1 and count(services, Alert) == 0
    again = purger.purge(NOW)  # nothing left to do: a pass is idempotent
    assert sum(again.purged.values()) == 0 and purger.totals["frames"] == 1
    assert purger.frame_bytes == again.frame_bytes > 0


def test_a_training_run_in_progress_protects_every_frame(services: Services) -> None:
    old = escalation(services, 40, judged=True)
    with services.sessions() as session:
        session.add(
            TrainingRun(
                id="run-1",
                site_id="s1",
                state="running",
                trigger="test",
                metrics={},
                reason="",
                log="",
                created_at=NOW,
            )
        )
        session.commit()
    report = Purger(services.engine, services.blobs, RetentionSection()).purge(NOW)
    assert report.frames_protected and report.purged["frames"] == 0
    assert frame_kept(services, old)


def test_over_the_size_limit_the_oldest_purgeable_frames_go(services: Services) -> None:
    ids = [escalation(services, age, judged=True) for age in (9, 8, 7, 6)]
    pending = escalation(services, 10, judged=False)
    one = services.blobs.size(make_path(services, ids[0]))
    limit_gb = (3.5 * one) / 1e9  # room for three and a half: the pending one and two newest
    settings = RetentionSection(frames_days=0, frames_max_gb=limit_gb)
    report = Purger(services.engine, services.blobs, settings).purge(NOW)
    kept = [frame_kept(services, i) for i in ids]
    assert kept == [False, False, True, True]
    assert frame_kept(services, pending)  # never purged, even to make room
    assert report.frame_bytes <= 3.5 * one


def make_path(services: Services, esc_id: str) -> str:
    with services.sessions() as session:
        row = session.get(Escalation, esc_id)
        assert row is not None
        return row.blob_path
