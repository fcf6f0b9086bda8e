"""Detections stored and served, on SQLite and PostgreSQL: one row per box from results (single
and in gateway batches, each box once however often it is delivered) and from verdicts; the
``/api/detections`` routes; the escalations' boxes; detection verdicts in the cascade health,
the rollout figures and the accuracy tallies."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from edgecascade.cloud.accuracy import tallies
from edgecascade.cloud.dashboard import queries
from edgecascade.cloud.db.models import DetectedBox, Escalation, Result
from edgecascade.cloud.rollouts.store import figures
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import StoreWriter
from edgecascade.cloud.training.store import verdict_counts
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import ApiClient, inbound
from tests.utils.detections import EDGE, box, make_detection_result, store_detection_judged
from tests.utils.factories import make_batch, make_result

T0 = 1_700_000_000.0


def boxes(services: Services) -> list[DetectedBox]:
    with services.sessions() as session:
        order = (DetectedBox.captured_at, DetectedBox.source, DetectedBox.position)
        return list(session.scalars(select(DetectedBox).order_by(*order)))


def test_a_detection_result_stores_a_row_per_box_once_however_often_delivered(
    services: Services,
) -> None:
    single = make_detection_result(
        [box("face", 0.6, 30, 10), box("face", 0.9, 5, 5, zone="door")], captured_at=T0
    )
    empty = make_detection_result([], captured_at=T0 + 1)
    batched = make_detection_result([box("person", 0.7, 1, 2)], captured_at=T0 + 2)
    classified = make_result("s1", "cam-3", captured_at=T0 + 3)
    batch = make_batch("s1", [("cam-2", batched), ("cam-2", empty), ("cam-3", classified)])
    writer = StoreWriter(services.engine, services.blobs)
    first = writer.write([inbound("s1", "cam-1", Kind.RESULT, single)])
    assert first.stored == 1
    # The gateway's batch repeats a result; then everything comes again (a lost PUBACK).
    writer.write([inbound("s1", "gw", Kind.RESULT_BATCH, batch)])
    again = writer.write(
        [
            inbound("s1", "cam-1", Kind.RESULT, single),
            inbound("s1", "gw", Kind.RESULT_BATCH, batch),
        ]
    )
    assert (again.stored, again.duplicates) == (0, 4)

    stored = boxes(services)
    assert [(b.device_id, b.position, b.label, b.score, b.zone) for b in stored] == [
        ("cam-1", 0, "face", 0.9, "door"),
        ("cam-1", 1, "face", 0.6, None),
        ("cam-2", 0, "person", 0.7, None),
    ]
    first_box = stored[0]
    assert (first_box.x0, first_box.y0, first_box.x1, first_box.y1) == (5, 5, 25, 25)
    assert (first_box.source, first_box.result_id, first_box.escalation_id) == (
        "edge",
        single.msg_id,
        None,
    )
    assert (first_box.captured_at, first_box.frame_width, first_box.frame_height) == (T0, 64, 48)
    assert (first_box.model_name, first_box.model_version) == (EDGE.name, EDGE.version)
    with services.sessions() as session:
        rows = {r.msg_id: r for r in session.scalars(select(Result))}
    # A detection result's row: its best box's label and score, the summary as top.
    best = rows[single.msg_id]
    assert (best.task, best.label, best.label_index, best.score) == ("detection", "face", 0, 0.9)
    assert best.top == [{"index": 0, "label": "face", "score": 0.9}]
    nothing = rows[empty.msg_id]
    assert (nothing.label, nothing.label_index, nothing.score, nothing.top) == ("", -1, 0.0, [])
    assert rows[classified.msg_id].task == "classification"


def test_verdicts_store_the_clouds_boxes_and_escalations_the_edges(services: Services) -> None:
    header = store_detection_judged(
        services, [box("face", 0.8, 10, 10)], [box("face", 0.9, 11, 10), box("face", 0.5, 40, 20)]
    )
    with services.sessions() as session:
        escalation = session.get(Escalation, header.msg_id)
    assert escalation is not None and escalation.task == "detection"
    assert (escalation.edge_label, escalation.edge_score) == ("face", 0.8)
    assert escalation.detections == [
        {"label": "face", "score": 0.8, "box": [10, 10, 30, 30], "zone": None}
    ]
    cloud = [b for b in boxes(services) if b.source == "cloud"]
    assert [(b.position, b.score, b.escalation_id) for b in cloud] == [
        (0, 0.9, header.msg_id),
        (1, 0.5, header.msg_id),
    ]


@pytest.fixture
def stored(client: ApiClient) -> dict[str, str]:
    """Boxes of two sites, three devices and both sources, an hour apart; their ids."""
    services = client.services
    a = store_detection_judged(
        services,
        [box("face", 0.8, 10, 10)],
        [box("face", 0.9, 11, 10)],
        "s1",
        "cam-1",
        captured_at=T0,
    )
    b = store_detection_judged(
        services, [], [box("person", 0.7, 0, 0)], "s1", "cam-2", captured_at=T0 + 3600
    )
    c = store_detection_judged(
        services,
        [box("face", 0.6, 1, 1), box("face", 0.4, 30, 1)],
        None,
        "s2",
        "cam-1",
        captured_at=T0 + 7200,
    )
    return {"a": a.result_id, "b": b.result_id, "c": c.result_id}


def test_api_detections_filters_and_pages(client: ApiClient, stored: dict[str, str]) -> None:
    def get(**params: str | float) -> dict[str, object]:
        response = client.get("/api/detections", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    everything = get()
    assert everything["total"] == 5
    items = everything["items"]
    assert isinstance(items, list)
    assert [(i["result_id"], i["source"], i["position"]) for i in items] == [
        (stored["a"], "cloud", 0),
        (stored["a"], "edge", 0),
        (stored["b"], "cloud", 0),
        (stored["c"], "edge", 0),
        (stored["c"], "edge", 1),
    ]
    assert items[0]["box"] == [11, 10, 31, 30] and items[0]["frame_width"] == 64
    assert get(label="person")["total"] == 1
    assert get(source="edge")["total"] == 3 and get(source="cloud")["total"] == 2
    assert get(site="s2")["total"] == 2 and get(site="s1", device="cam-2")["total"] == 1
    assert get(device="cam-1")["total"] == 4
    assert get(since=T0 + 1, until=T0 + 7200)["total"] == 1
    first, second = get(limit=4), get(limit=4, offset=4)
    assert len(first["items"]) == 4 and len(second["items"]) == 1  # type: ignore[arg-type]
    assert first["total"] == second["total"] == 5
    assert client.get("/api/detections", params={"source": "both"}).status_code == 422
    assert client.get("/api/detections", headers={"Authorization": ""}).status_code == 401


def test_api_detection_counts_per_label_over_time(
    client: ApiClient, stored: dict[str, str]
) -> None:
    params = {"since": T0, "until": T0 + 3 * 3600, "bucket_s": 3600}
    response = client.get("/api/detections/counts", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == ["face", "person"]
    assert [p["counts"] for p in body["points"]] == [{"face": 2}, {"person": 1}, {"face": 2}]
    assert [p["start"] for p in body["points"]] == [T0, T0 + 3600, T0 + 7200]
    edge = client.get("/api/detections/counts", params={**params, "source": "edge"}).json()
    assert [p["total"] for p in edge["points"]] == [1, 0, 2]
    too_many = client.get("/api/detections/counts", params={**params, "bucket_s": 1})
    assert too_many.status_code == 422 and "buckets" in too_many.json()["detail"]


def test_api_escalations_carry_the_edges_and_the_clouds_boxes(
    client: ApiClient, stored: dict[str, str]
) -> None:
    items = client.get("/api/escalations").json()["items"]
    by_result = {item["result_id"]: item for item in items}
    first = by_result[stored["a"]]
    assert first["task"] == "detection"
    assert [d["box"] for d in first["edge_detections"]] == [[10, 10, 30, 30]]
    verdict = first["verdict"]
    assert [d["box"] for d in verdict["detections"]] == [[11, 10, 31, 30]]
    assert verdict["agrees"] is True and verdict["agreement"]["matched"] == 1
    missed = by_result[stored["b"]]["verdict"]
    assert missed["agrees"] is False and missed["agreement"]["recall"] == 0.0
    assert by_result[stored["c"]]["verdict"] is None


def test_detection_verdicts_count_in_health_rollouts_and_accuracy(services: Services) -> None:
    now = time.time()
    store_detection_judged(services, [box("face", 0.8, 10, 10)], [box("face", 0.9, 10, 10)])
    store_detection_judged(services, [], [box("face", 0.9, 10, 10)])  # missed: recall 0
    store_detection_judged(
        services, [box("face", 0.8, 10, 10), box("face", 0.7, 40, 20)], [box("face", 0.9, 10, 10)]
    )  # one box too many: precision 0.5
    with services.sessions() as session:
        totals = queries.health(session, services.blobs, now - 60, now + 60, 120)["totals"]
    assert (totals["verdicts"], totals["disagreed"], totals["detection_verdicts"]) == (3, 2, 3)
    assert totals["edge_precision"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert totals["edge_recall"] == pytest.approx((1 + 0 + 1) / 3)
    with services.sessions() as session:
        measured = figures(session, "s1", EDGE.name, EDGE.version, now - 60)
        (tally,) = tallies(session, "s1")
        training = verdict_counts(session, "s1", None)
    assert measured.verdicts == 3 and measured.disagreement == pytest.approx(2 / 3)
    assert measured.edge_recall == pytest.approx(2 / 3)
    assert (tally.escalated, tally.disagreeing) == (3, 2)
    # No sample for the site's classifier: the training triggers leave them out.
    assert (training.total, training.disagreeing) == (0, 0)
