"""Alert rules evaluated over stored data on SQLite and PostgreSQL: offline devices, a lost camera
stream, failed training runs, rolled-back rollouts, telemetry thresholds; one alert per subject
while it fires; resolved when the condition ends. Data goes in the way the ingest writes it (the
store writer, messages through the real codec); the evaluator is driven with explicit times."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from edgecascade.cloud.alerts.config import AlertKind, AlertRule, AlertsSection
from edgecascade.cloud.alerts.evaluator import AlertEvaluator
from edgecascade.cloud.alerts.measure import source_status
from edgecascade.cloud.db.alert_models import Alert, AlertDelivery, DeviceCondition
from edgecascade.cloud.db.models import Rollout, TrainingRun, Verdict
from edgecascade.cloud.services import Services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import inbound
from tests.utils.factories import make_result, make_state, make_telemetry


def evaluator_for(services: Services, *rules: AlertRule, **alerts: Any) -> AlertEvaluator:
    settings = services.settings.model_copy(
        update={"alerts": AlertsSection(rules=list(rules), **alerts)}
    )
    return AlertEvaluator(services.engine, settings)


@pytest.fixture
def store(services: Services) -> Iterator[Any]:
    writer = StoreWriter(services.engine, services.blobs)

    def put(site: str, device: str, kind: Kind, message: BaseModel) -> None:
        writer.write([inbound(site, device, kind, message)])

    yield put


def alerts_of(services: Services, rule: str | None = None) -> list[Alert]:
    with services.sessions() as session:
        query = select(Alert).order_by(Alert.since)
        if rule is not None:
            query = query.where(Alert.rule == rule)
        return list(session.scalars(query))


def test_a_device_offline_longer_than_the_threshold_fires_once_and_resolves_on_return(
    services: Services, store: Any
) -> None:
    rule = AlertRule(name="cam-offline", kind=AlertKind.OFFLINE, threshold=30)
    evaluator = evaluator_for(services, rule, webhooks=["http://127.0.0.1:9/hook"])
    t0 = time.time()
    session = int(t0 * 1000)
    store("s1", "cam-1", Kind.STATE, make_state(session=session, ts=t0))
    store("s1", "cam-1", Kind.STATE, make_state(status="offline", session=session, ts=t0 + 5))

    evaluator.evaluate(t0 + 20)  # offline for 15 s: not yet
    assert alerts_of(services) == []

    evaluator.evaluate(t0 + 40)  # offline for 35 s
    evaluator.evaluate(t0 + 50)  # still: the same alert, refreshed
    [alert] = alerts_of(services)
    assert (alert.rule, alert.site_id, alert.device_id, alert.state) == (
        "cam-offline",
        "s1",
        "cam-1",
        "firing",
    )
    assert alert.since == t0 + 40
    assert alert.value == pytest.approx(45)
    assert "offline for 45 s" in alert.message

    # Back: a new session's online state.
    store("s1", "cam-1", Kind.STATE, make_state(session=session + 60_000, ts=t0 + 60))
    evaluator.evaluate(t0 + 61)
    [alert] = alerts_of(services)
    assert (alert.state, alert.resolved_at, alert.firing_key) == ("resolved", t0 + 61, None)

    with services.sessions() as db:
        events = [d.event for d in db.scalars(select(AlertDelivery).order_by(AlertDelivery.event))]
    assert events == ["firing", "resolved"]  # one per event per channel, not per evaluation

    # Offline again later: a new alert, the resolved one stays as history.
    store(
        "s1",
        "cam-1",
        Kind.STATE,
        make_state(status="offline", session=session + 60_000, ts=t0 + 70),
    )
    evaluator.evaluate(t0 + 110)
    assert [a.state for a in alerts_of(services)] == ["resolved", "firing"]


def test_a_silent_gateway_fires_offline_although_its_last_state_said_online(
    services: Services, store: Any
) -> None:
    rule = AlertRule(name="silent", kind=AlertKind.OFFLINE, threshold=60, site="s1")
    t0 = time.time()
    store("s1", "gw-1", Kind.STATE, make_state(role="gateway", ts=t0))
    store("s2", "gw-2", Kind.STATE, make_state(role="gateway", ts=t0))  # another site: out of scope
    evaluator_for(services, rule).evaluate(t0 + 61)
    [alert] = alerts_of(services)
    assert (alert.site_id, alert.device_id) == ("s1", "gw-1")
    assert alert.message.startswith("gateway s1/gw-1 not heard from for 61 s")


def test_a_lost_camera_stream_reported_in_the_state_detail_fires_after_for_s(
    services: Services, store: Any
) -> None:
    rule = AlertRule(name="stream", kind=AlertKind.STREAM_LOST, for_s=60)
    evaluator = evaluator_for(services, rule)
    t0 = time.time()
    session = int(t0 * 1000)
    lost = "host-a; source reconnecting: no frame from rtsp://cam"
    store("s1", "cam-1", Kind.STATE, make_state(session=session, ts=t0, detail=lost))
    with services.sessions() as db:
        condition = db.get(DeviceCondition, ("s1", "cam-1"))
    assert condition is not None and condition.detail == lost  # the cloud keeps the detail now

    evaluator.evaluate(t0 + 1)  # breaching, not yet for 60 s
    assert alerts_of(services) == []
    evaluator.evaluate(t0 + 62)
    [alert] = alerts_of(services)
    assert alert.state == "firing"
    assert "reconnecting: no frame from rtsp://cam" in alert.message

    store(
        "s1",
        "cam-1",
        Kind.STATE,
        make_state(session=session, ts=t0 + 70, detail="host-a; source ok"),
    )
    evaluator.evaluate(t0 + 71)
    assert [a.state for a in alerts_of(services)] == ["resolved"]


def test_source_status_reads_the_agents_detail() -> None:
    assert source_status("host; source reconnecting: timeout") == "reconnecting: timeout"
    assert source_status("host; source ok") == "ok"
    assert source_status("a gateway's own words") is None


def _failed_run(run_id: str, site: str, finished_at: float) -> TrainingRun:
    return TrainingRun(
        id=run_id,
        site_id=site,
        state="failed",
        trigger="by hand (test)",
        metrics={},
        reason="the trainer ran out of memory",
        log="",
        created_at=finished_at - 100,
        finished_at=finished_at,
    )


def _rollout(rollout_id: str, state: str, updated_at: float) -> Rollout:
    return Rollout(
        id=rollout_id,
        site_id="s1",
        targets=["cam-1"],
        model_name="edge",
        model_version="2",
        sha256="b" * 64,
        baseline_name="edge",
        baseline_version="1",
        baseline_sha256="a" * 64,
        stages=[50.0, 100.0],
        stage=0,
        stage_started_at=updated_at - 100,
        criteria={},
        state=state,
        reason="disagreement rose by 0.3 over the baseline",
        evaluation={},
        offered=["cam-1"],
        created_at=updated_at - 200,
        updated_at=updated_at,
        created_by="test",
    )


def test_a_failed_training_run_and_a_rolled_back_rollout_fire(services: Services) -> None:
    now = time.time()
    with services.sessions() as db:
        db.add(_failed_run("run-1", "s1", now - 10))
        db.add(_failed_run("run-old", "s1", now - 7200))  # outside the window
        db.add(_rollout("ro-1", "rolled_back", now - 5))
        db.add(_rollout("ro-2", "completed", now - 5))
        db.commit()
    evaluator = evaluator_for(
        services,
        AlertRule(name="training", kind=AlertKind.TRAINING_FAILED, window_s=3600),
        AlertRule(name="rollback", kind=AlertKind.ROLLED_BACK, window_s=3600),
    )
    evaluator.evaluate(now)
    evaluator.evaluate(now + 1)
    fired = {(a.rule, a.item): a for a in alerts_of(services)}
    assert set(fired) == {("training", "run-1"), ("rollback", "ro-1")}
    assert "the trainer ran out of memory" in fired["training", "run-1"].message
    assert "rolled back: disagreement rose" in fired["rollback", "ro-1"].message

    evaluator.evaluate(now + 3600)  # out of the window: resolved
    assert {a.state for a in alerts_of(services)} == {"resolved"}


def test_temperature_and_outbox_fire_on_each_devices_newest_telemetry(
    services: Services, store: Any
) -> None:
    t0 = time.time()
    outbox = {"outbox_bytes": 900, "outbox_quota_bytes": 1000}
    store("s1", "cam-1", Kind.TELEMETRY, make_telemetry(ts=t0 - 20, temperature_c=90.0))
    store("s1", "cam-1", Kind.TELEMETRY, make_telemetry(ts=t0, temperature_c=60.0, queues=outbox))
    store("s1", "cam-2", Kind.TELEMETRY, make_telemetry(ts=t0, temperature_c=85.5))
    store("s1", "cam-3", Kind.TELEMETRY, make_telemetry(ts=t0))  # reports no outbox bytes
    evaluator_for(
        services,
        AlertRule(name="hot", kind=AlertKind.TEMPERATURE, threshold=80),
        AlertRule(name="outbox", kind=AlertKind.OUTBOX, threshold=75),
    ).evaluate(t0 + 1)
    fired = {(a.rule, a.device_id): a.value for a in alerts_of(services)}
    assert fired == {("hot", "cam-2"): 85.5, ("outbox", "cam-1"): pytest.approx(90.0)}


def test_escalation_rate_needs_min_samples_and_fires_above_the_threshold(
    services: Services, store: Any
) -> None:
    t0 = time.time()
    for i in range(10):
        store("s1", "cam-1", Kind.RESULT, make_result(captured_at=t0 - i, escalated=i < 6))
        store("s1", "cam-2", Kind.RESULT, make_result(captured_at=t0 - i, escalated=i < 1))
    for i in range(3):
        store("s1", "cam-3", Kind.RESULT, make_result(captured_at=t0 - i, escalated=True))
    rule = AlertRule(
        name="esc", kind=AlertKind.ESCALATION_RATE, threshold=0.5, window_s=600, min_samples=5
    )
    evaluator_for(services, rule).evaluate(t0 + 1)
    [alert] = alerts_of(services)
    assert alert.device_id == "cam-1"
    assert alert.value == pytest.approx(0.6)


def test_removing_a_rule_resolves_its_alerts_and_a_duplicate_insert_is_refused(
    services: Services,
) -> None:
    now = time.time()
    with services.sessions() as db:
        db.add(_failed_run("run-1", "s1", now - 10))
        db.commit()
    rule = AlertRule(name="training", kind=AlertKind.TRAINING_FAILED)
    first, second = evaluator_for(services, rule), evaluator_for(services, rule)
    first.evaluate(now)
    second.evaluate(now)  # another replica: sees it firing, does not fire it again
    [alert] = alerts_of(services)
    # A replica that had not seen it yet tries to insert the same subject: refused by the key.
    second.states._fire(rule, alert.firing_key or "", _breach_of(alert), now + 1)
    assert len(alerts_of(services)) == 1

    evaluator_for(services).evaluate(now + 2)  # no rules any more
    [alert] = alerts_of(services)
    assert alert.state == "resolved" and "its rule was removed" in alert.message


def _breach_of(alert: Alert) -> Any:
    from edgecascade.cloud.alerts.measure import Breach

    return Breach(alert.site_id, alert.device_id, alert.item, alert.value, alert.message)


def test_the_settings_refuse_bad_rules_naming_the_value(cloud_settings: CloudSettings) -> None:
    with pytest.raises(ValueError, match=r"threshold 1\.5 is out of range for disagreement"):
        AlertRule(name="d", kind=AlertKind.DISAGREEMENT, threshold=1.5)
    with pytest.raises(ValueError, match="'boom'"):
        AlertRule.model_validate({"name": "x", "kind": "boom", "threshold": 1})
    with pytest.raises(ValueError, match="window_s"):
        AlertRule(name="w", kind=AlertKind.ROLLED_BACK, window_s=-5)
    with pytest.raises(ValueError, match="kind offline needs a threshold"):
        AlertRule(name="o", kind=AlertKind.OFFLINE)
    with pytest.raises(ValueError, match="device 'cam-1' cannot scope it"):
        AlertRule(name="a", kind=AlertKind.ACCURACY, threshold=0.8, device="cam-1")
    rule = AlertRule(name="same", kind=AlertKind.ROLLED_BACK)
    with pytest.raises(ValueError, match="rule name 'same' is used twice"):
        AlertsSection(rules=[rule, rule])
    with pytest.raises(ValueError, match="'ftp://x/y' is not an http"):
        AlertsSection(webhooks=["ftp://x/y"])
    assert cloud_settings.alerts.rules == []  # no rules unless configured


def _verdict(*, audit: bool, agrees: bool, created_at: float) -> Verdict:
    return Verdict(
        escalation_id=str(uuid.uuid4()),
        msg_id=str(uuid.uuid4()),
        result_id=str(uuid.uuid4()),
        site_id="s1",
        device_id="cam-1",
        created_at=created_at,
        worker_id="w1",
        model_name="cloud",
        model_version="1",
        model_sha256="c" * 64,
        label="cat",
        label_index=0,
        score=0.9,
        top=[],
        edge_model_name="edge",
        edge_model_version="1",
        edge_label="cat" if agrees else "dog",
        edge_score=0.6,
        agrees=agrees,
        inference_ms=1.0,
        audit=audit,
        probs=None,
    )


def test_disagreement_and_the_audit_accuracy_fire_per_site_and_edge_model(
    services: Services,
) -> None:
    now = time.time()
    with services.sessions() as db:
        for i in range(10):  # escalations: 7 of 10 disagree
            db.add(_verdict(audit=False, agrees=i >= 7, created_at=now - 10))
        for i in range(10):  # audit samples: 6 of 10 right
            db.add(_verdict(audit=True, agrees=i < 6, created_at=now - 10))
        db.commit()
    evaluator_for(
        services,
        AlertRule(name="disagree", kind=AlertKind.DISAGREEMENT, threshold=0.5, min_samples=10),
        AlertRule(name="accuracy", kind=AlertKind.ACCURACY, threshold=0.8, min_samples=10),
        AlertRule(name="unjudged", kind=AlertKind.ACCURACY, threshold=0.8, min_samples=11),
    ).evaluate(now)
    fired = {a.rule: a for a in alerts_of(services)}
    assert set(fired) == {"disagree", "accuracy"}  # 10 audit samples are too few for "unjudged"
    assert (fired["disagree"].site_id, fired["disagree"].item) == ("s1", "edge@1")
    assert fired["disagree"].value == pytest.approx(0.7)
    assert fired["accuracy"].value == pytest.approx(0.6)
    assert (
        "accuracy estimated from audit samples 60.0% over 10 verdicts" in fired["accuracy"].message
    )
