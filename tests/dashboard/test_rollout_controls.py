"""Pausing and resuming a rollout through the API (the dashboard's buttons), on SQLite and
PostgreSQL. The controller is the real one, not started: these transitions send nothing to the
devices (rolling back does; the browser test rolls one back for real)."""

from __future__ import annotations

import time

from edgecascade.cloud.db.models import Rollout
from edgecascade.cloud.rollouts import RolloutController
from tests.cloud.conftest import ApiClient


def running_rollout(client: ApiClient) -> str:
    now = time.time() - 100
    with client.services.sessions() as session:
        session.add(
            Rollout(
                id="ro-test",
                site_id="s1",
                targets=["cam-1", "cam-2"],
                model_name="m",
                model_version="2",
                sha256="2" * 64,
                baseline_name="m",
                baseline_version="1",
                baseline_sha256="1" * 64,
                stages=[50.0, 100.0],
                stage=0,
                stage_started_at=now,
                criteria={},
                state="running",
                reason="",
                evaluation={},
                offered=["cam-1"],
                created_at=now,
                updated_at=now,
                created_by="test",
            )
        )
        session.commit()
    return "ro-test"


def test_an_operator_pauses_and_resumes_a_rollout_and_a_viewer_cannot(client: ApiClient) -> None:
    services = client.services
    operator = client.as_role("operator")
    unlinked = client.post("/api/rollouts/ro-test/pause", json={}, headers=operator)
    assert unlinked.status_code == 503 and "MQTT" in unlinked.json()["detail"]
    controller = RolloutController(services.engine, services.settings)
    services.rollouts = controller  # as the served app has it with its MQTT link
    rollout_id = running_rollout(client)

    refused = client.post(f"/api/rollouts/{rollout_id}/pause", json={})
    assert refused.status_code == 403 and "viewer" in refused.json()["detail"]

    paused = client.post(
        f"/api/rollouts/{rollout_id}/pause", json={"reason": "night shift"}, headers=operator
    )
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["state"] == "paused" and body["reason"].endswith(": night shift")

    # The controller leaves a paused rollout alone: nothing measured, nothing widened.
    controller.evaluate(rollout_id)
    assert client.get(f"/api/rollouts/{rollout_id}").json()["evaluation"] == {}

    again = client.post(f"/api/rollouts/{rollout_id}/pause", json={}, headers=operator)
    assert again.status_code == 409 and "is paused, not running" in again.json()["detail"]

    started_before = controller.get(rollout_id).stage_started_at
    resumed = client.post(f"/api/rollouts/{rollout_id}/resume", headers=operator)
    assert resumed.status_code == 200 and resumed.json()["state"] == "running"
    assert resumed.json()["reason"] == ""
    assert controller.get(rollout_id).stage_started_at > started_before  # the stage starts over

    twice = client.post(f"/api/rollouts/{rollout_id}/resume", headers=operator)
    assert twice.status_code == 409 and "is running, not paused" in twice.json()["detail"]
    missing = client.post("/api/rollouts/ro-nope/resume", headers=operator)
    assert missing.status_code == 404 and "'ro-nope'" in missing.json()["detail"]
