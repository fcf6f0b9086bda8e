"""The live accuracy estimate: the Wilson interval, the tallies on a real store (SQLite and
PostgreSQL) and ``GET /api/accuracy`` served for real."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edgecascade.cloud.accuracy import BIASED_NOTE, tallies, wilson_interval
from edgecascade.cloud.db.models import Verdict
from edgecascade.cloud.services import Services
from edgecascade.shared.ids import new_message_id
from tests.cloud.conftest import ApiClient


def test_wilson_interval_matches_known_values() -> None:
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint(method="wilson")).
    low, high = wilson_interval(81, 100)
    assert (round(low, 4), round(high, 4)) == (0.7222, 0.8749)
    low, high = wilson_interval(9, 10)
    assert (round(low, 4), round(high, 4)) == (0.5958, 0.9821)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing audited: nothing known


def test_wilson_interval_at_the_ends_and_its_width() -> None:
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.83 < low < 0.84  # all right is not "certainly right"
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.16 < high < 0.17
    widths = [h - lo for lo, h in (wilson_interval(n * 9 // 10, n) for n in (10, 100, 1000))]
    assert widths == sorted(widths, reverse=True)  # more samples, a narrower interval
    narrow = wilson_interval(90, 100, confidence=0.8)
    wide = wilson_interval(90, 100, confidence=0.99)
    assert wide[0] < narrow[0] < 0.9 < narrow[1] < wide[1]
    for successes, trials, confidence in ((3, 2, 0.95), (-1, 5, 0.95), (1, 5, 1.0)):
        with pytest.raises(ValueError):
            wilson_interval(successes, trials, confidence)


def verdict(site: str, version: str, agrees: bool, audit: bool, at: float) -> Verdict:
    edge, cloud = ("shirt", "shirt") if agrees else ("shirt", "coat")
    return Verdict(
        escalation_id=new_message_id(),
        msg_id=new_message_id(),
        result_id=new_message_id(),
        site_id=site,
        device_id="cam1",
        created_at=at,
        worker_id="w1",
        model_name="fashion-cloud",
        model_version="1.0.0",
        model_sha256="0" * 64,
        label=cloud,
        label_index=0,
        score=0.9,
        top=[{"index": 0, "label": cloud, "score": 0.9}],
        edge_model_name="fashion-edge",
        edge_model_version=version,
        edge_label=edge,
        edge_score=0.95 if audit else 0.5,
        agrees=agrees,
        inference_ms=1.0,
        audit=audit,
        probs=[0.9, 0.1],
    )


def store(services: Services, now: float) -> None:
    """site1 runs 1.0.0 (18 of 20 audits right; 6 of 10 escalations wrong) and 1.1.0 (only
    escalations); site2 has 3 audits, one an hour old."""
    rows = [verdict("site1", "1.0.0", n < 18, True, now - n) for n in range(20)]
    rows += [verdict("site1", "1.0.0", n >= 6, False, now - n) for n in range(10)]
    rows += [verdict("site1", "1.1.0", False, False, now)]
    rows += [verdict("site2", "1.0.0", True, True, now - t) for t in (1, 2, 3600)]
    with services.sessions() as session:
        session.add_all(rows)
        session.commit()


def test_tallies_keep_audits_and_escalations_apart(services: Services) -> None:
    now = time.time()
    store(services, now)
    with services.sessions() as session:
        everything = tallies(session)
        recent = tallies(session, site="site2", since=now - 60)
    assert [(t.site, t.model_version) for t in everything] == [
        ("site1", "1.0.0"),
        ("site1", "1.1.0"),
        ("site2", "1.0.0"),
    ]
    site1 = everything[0]
    assert (site1.audited, site1.agreeing, site1.escalated, site1.disagreeing) == (20, 18, 10, 6)
    assert (everything[1].audited, everything[1].escalated) == (0, 1)
    assert [(t.site, t.audited, t.agreeing) for t in recent] == [("site2", 2, 2)]


def test_the_api_gives_the_estimate_and_labels_the_escalated_figure_biased(
    client: ApiClient,
) -> None:
    now = time.time()
    store(client.services, now)
    body = client.get("/api/accuracy", params={"site": "site1"}).json()
    assert body["confidence"] == 0.95 and body["site"] == "site1"
    first: dict[str, Any] = body["items"][0]
    low, high = wilson_interval(18, 20)
    assert {k: first[k] for k in ("model_name", "model_version", "audited", "agreeing")} == {
        "model_name": "fashion-edge",
        "model_version": "1.0.0",
        "audited": 20,
        "agreeing": 18,
    }
    assert first["estimate"] == 0.9 and (first["low"], first["high"]) == (low, high)
    assert first["escalated"] == {
        "verdicts": 10,
        "disagreeing": 6,
        "disagreement": 0.6,
        "biased": True,
        "note": BIASED_NOTE,
    }
    unaudited = body["items"][1]  # no audit sample yet: no estimate, the whole of [0, 1]
    assert unaudited["estimate"] is None and (unaudited["low"], unaudited["high"]) == (0, 1)
    since = client.get("/api/accuracy", params={"since": now - 60}).json()["items"]
    assert [(i["site"], i["audited"]) for i in since] == [
        ("site1", 20),
        ("site1", 0),
        ("site2", 2),
    ]
    assert client.get("/api/accuracy", params={"site": "no/such"}).status_code == 422
    assert client.get("/api/accuracy", headers={"Authorization": ""}).status_code == 401
