"""``/api/alerts`` over the served app on SQLite and PostgreSQL: the alerts with their state
filter and firing count, one alert with its deliveries, and the rules: the settings' defaults until
an admin PUTs a set, bad rules refused with a 422 naming the value, writes refused to a viewer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecascade.cloud.alerts.config import AlertKind, AlertRule, AlertsSection
from edgecascade.cloud.alerts.evaluator import AlertEvaluator
from edgecascade.cloud.app import create_app
from edgecascade.cloud.db.models import TrainingRun
from edgecascade.cloud.settings import CloudSettings
from tests.cloud.conftest import ApiClient, serving

DEFAULT = AlertRule(name="training", kind=AlertKind.TRAINING_FAILED)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[ApiClient]:
    """The API with one default rule and a webhook channel (with a password to keep secret)."""
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        alerts=AlertsSection(rules=[DEFAULT], webhooks=["http://ops:secret@127.0.0.1:9/hook"]),
    )
    app = create_app(settings, start_ingest=False)
    with serving(app) as base_url, ApiClient(base_url=base_url, timeout=10) as client:
        client.services = app.state.services
        client.headers.update(client.as_role("viewer"))
        yield client


def fire_two(api: ApiClient) -> AlertEvaluator:
    """Two failed runs: two alerts, then one of them resolved."""
    services = api.services
    now = time.time()
    with services.sessions() as db:
        for run_id in ("run-1", "run-2"):
            db.add(
                TrainingRun(
                    id=run_id,
                    site_id="s1",
                    state="failed",
                    trigger="test",
                    metrics={},
                    reason="boom",
                    log="",
                    created_at=now - 10,
                    finished_at=now - 5 if run_id == "run-1" else now - 3000,
                )
            )
        db.commit()
    evaluator = AlertEvaluator(services.engine, services.settings)
    evaluator.evaluate(now)
    evaluator.evaluate(now + 1000)  # run-2 leaves the hour's window: resolved
    return evaluator


def test_alerts_are_listed_by_state_with_the_firing_count(api: ApiClient) -> None:
    fire_two(api)
    body = api.get("/api/alerts").json()
    assert body["firing"] == 1
    assert sorted((a["item"], a["state"]) for a in body["items"]) == [
        ("run-1", "firing"),
        ("run-2", "resolved"),
    ]
    firing = api.get("/api/alerts", params={"state": "firing"}).json()["items"]
    assert [a["item"] for a in firing] == ["run-1"]
    assert firing[0]["message"] == "training run run-1 of site s1 failed: boom"
    assert len(api.get("/api/alerts", params={"limit": 1}).json()["items"]) == 1
    assert api.get("/api/alerts", params={"state": "burning"}).status_code == 422

    detail = api.get(f"/api/alerts/{firing[0]['id']}").json()
    assert [(d["event"], d["channel"], d["state"]) for d in detail["deliveries"]] == [
        ("firing", "webhook:0", "pending")
    ]
    missing = api.get("/api/alerts/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "no alert" in missing.json()["detail"]
    assert api.get("/api/alerts", headers={"Authorization": ""}).status_code == 401


def test_rules_default_to_the_settings_until_an_admin_replaces_them(api: ApiClient) -> None:
    got = api.get("/api/alerts/rules").json()
    assert got["source"] == "settings"
    assert [r["name"] for r in got["rules"]] == ["training"]
    assert got["channels"] == ["http://127.0.0.1:9/hook"]  # no password shown

    new = {
        "rules": [
            {"name": "offline", "kind": "offline", "threshold": 120, "site": "s1"},
            {"name": "hot", "kind": "temperature", "threshold": 80, "for_s": 60},
        ]
    }
    refused = api.put("/api/alerts/rules", json=new)
    assert refused.status_code == 403 and "needs admin" in refused.json()["detail"]

    admin = api.as_role("admin")
    put = api.put("/api/alerts/rules", json=new, headers=admin)
    assert put.status_code == 200, put.text
    got = api.get("/api/alerts/rules").json()
    assert got["source"] == "api"
    assert [(r["name"], r["threshold"], r["for_s"]) for r in got["rules"]] == [
        ("offline", 120, 0),
        ("hot", 80, 60),
    ]
    assert api.put("/api/alerts/rules", json={"rules": []}, headers=admin).status_code == 200
    assert api.get("/api/alerts/rules").json() == {**got, "rules": []}  # empty: no alerts


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"name": "x", "kind": "meltdown"}, '"input":"meltdown"'),
        ({"name": "x", "kind": "rolled_back", "window_s": -60}, "window_s"),
        ({"name": "x", "kind": "disagreement", "threshold": 1.5}, "threshold 1.5 is out of range"),
        ({"name": "x", "kind": "temperature"}, "kind temperature needs a threshold"),
        ({"name": "x/y", "kind": "rolled_back"}, "name"),
        ({"name": "x", "kind": "rolled_back", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_rule_is_a_422_naming_the_value(
    api: ApiClient, rule: dict[str, object], says: str
) -> None:
    response = api.put("/api/alerts/rules", json={"rules": [rule]}, headers=api.as_role("admin"))
    assert response.status_code == 422
    assert says in response.text
    assert api.get("/api/alerts/rules").json()["source"] == "settings"  # nothing stored


def test_two_rules_of_one_name_are_refused(api: ApiClient) -> None:
    rule = {"name": "same", "kind": "rolled_back"}
    response = api.put(
        "/api/alerts/rules", json={"rules": [rule, rule]}, headers=api.as_role("admin")
    )
    assert response.status_code == 422
    assert "rule name 'same' is used twice" in response.text
