"""The training triggers (a pure function) and the training API: roles, 404s, queueing."""

from __future__ import annotations

import time

import pytest

from edgecascade.cloud.db.models import Site
from edgecascade.cloud.settings import TrainSection
from edgecascade.cloud.training.trigger import SiteStats, TrainingScheduler, should_train
from tests.cloud.conftest import ApiClient

NOW = 1_000_000.0
QUIET = SiteStats(0, 0, 0, None, active=False)


def test_every_trigger_is_off_by_default() -> None:
    busy = SiteStats(10_000, 10_000, 9_000, NOW - 1e9, active=False)
    assert should_train(busy, TrainSection(), NOW) is None


def test_min_new_samples_fires_at_the_threshold() -> None:
    settings = TrainSection(min_new_samples=500)
    assert should_train(SiteStats(499, 0, 0, None, False), settings, NOW) is None
    reason = should_train(SiteStats(500, 0, 0, None, False), settings, NOW)
    assert reason is not None and reason.startswith("min_new_samples: 500 new verdicts")


def test_max_disagreement_needs_enough_verdicts_and_a_higher_share() -> None:
    settings = TrainSection(max_disagreement=0.3, min_window_verdicts=100)
    assert should_train(SiteStats(0, 99, 90, None, False), settings, NOW) is None
    assert should_train(SiteStats(0, 100, 30, None, False), settings, NOW) is None
    reason = should_train(SiteStats(0, 100, 31, None, False), settings, NOW)
    assert reason is not None and "31.0%" in reason and "escalated only" in reason


def test_schedule_fires_when_the_last_run_is_old_enough() -> None:
    settings = TrainSection(schedule_s=3600)
    assert should_train(SiteStats(0, 0, 0, NOW - 3599, False), settings, NOW) is None
    assert should_train(SiteStats(0, 0, 0, NOW - 3600, False), settings, NOW) is not None
    assert should_train(SiteStats(0, 0, 0, None, False), settings, NOW) is not None


def test_a_site_with_an_active_run_is_left_alone() -> None:
    settings = TrainSection(min_new_samples=1, schedule_s=1)
    assert should_train(SiteStats(10, 0, 0, None, active=True), settings, NOW) is None


def test_the_scheduler_queues_one_run_per_firing_site(client: ApiClient) -> None:
    services = client.services
    with services.sessions() as session:
        session.add(Site(id="s1", first_seen=NOW, last_seen=NOW))
        session.commit()
    scheduler = TrainingScheduler(services.engine, TrainSection(schedule_s=60))
    assert len(scheduler.check(time.time())) == 1
    assert scheduler.check(time.time()) == []  # the queued run is active
    runs = client.get("/api/training/runs").json()["items"]
    assert [(r["site"], r["state"]) for r in runs] == [("s1", "queued")]
    assert runs[0]["trigger"].startswith("schedule_s: no run yet")


def test_runs_by_hand_need_an_admin_and_a_known_site(client: ApiClient) -> None:
    with client.services.sessions() as session:
        session.add(Site(id="s1", first_seen=NOW, last_seen=NOW))
        session.commit()
    body = {"site": "s1"}
    assert client.post("/api/training/runs", json=body).status_code == 403
    operator = client.as_role("operator")
    assert client.post("/api/training/runs", json=body, headers=operator).status_code == 403
    admin = client.as_role("admin")
    missing = client.post("/api/training/runs", json={"site": "nope"}, headers=admin)
    assert missing.status_code == 422 and "no site 'nope'" in missing.json()["detail"]
    created = client.post("/api/training/runs", json=body, headers=admin)
    assert created.status_code == 201
    run = created.json()
    assert (run["state"], run["site"]) == ("queued", "s1")
    assert run["trigger"].startswith("by hand (test-admin-")
    assert client.get(f"/api/training/runs/{run['id']}").json()["id"] == run["id"]
    assert client.get("/api/training/runs/tr-nothing").status_code == 404


@pytest.mark.parametrize("path", ["/api/training/runs", "/api/training/lineage"])
def test_the_listings_answer_viewers(client: ApiClient, path: str) -> None:
    assert client.get(path).status_code == 200
