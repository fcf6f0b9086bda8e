"""Alert notifications through real channels: mail through apprise to a local SMTP server
(aiosmtpd), a JSON webhook to a local HTTP server, MQTT on a real broker. And the bad cases: a
webhook that answers 500 or never answers, an SMTP server that refuses; each is a recorded
failure retried with backoff, given up on (and kept) after max_attempts, and a delivery not yet
sent survives the evaluator's restart."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.alerts.config import AlertKind, AlertRule, AlertsSection
from edgecascade.cloud.alerts.evaluator import AlertEvaluator
from edgecascade.cloud.alerts.sender import retry_delay
from edgecascade.cloud.db.alert_models import AlertDelivery
from edgecascade.cloud.db.models import TrainingRun
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings
from tests.cloud.alert_receivers import hanging_server, http_server, mailto, smtp_server
from tests.utils.mqtt import Collector, wait_until

RULE = AlertRule(name="training", kind=AlertKind.TRAINING_FAILED, window_s=3600)


def evaluator_for(services: Services, **alerts: Any) -> AlertEvaluator:
    settings = services.settings.model_copy(
        update={"alerts": AlertsSection(rules=[RULE], **alerts)}
    )
    return AlertEvaluator(services.engine, settings)


def fail_a_run(services: Services, now: float, run_id: str = "run-1") -> None:
    with services.sessions() as db:
        db.add(
            TrainingRun(
                id=run_id,
                site_id="s1",
                state="failed",
                trigger="test",
                metrics={},
                reason="no verdicts to train on",
                log="",
                created_at=now - 60,
                finished_at=now - 1,
            )
        )
        db.commit()


def forget_the_run(services: Services) -> None:
    with services.sessions() as db:
        for run in db.scalars(select(TrainingRun)):
            db.delete(run)
        db.commit()


def deliveries(services: Services) -> list[AlertDelivery]:
    with services.sessions() as db:
        query = select(AlertDelivery).order_by(AlertDelivery.created_at, AlertDelivery.channel)
        return list(db.scalars(query))


def test_firing_and_resolved_go_through_mail_webhook_and_mqtt(
    services: Services, broker: MosquittoBroker
) -> None:
    topic = "ec/cloud/alerts"
    settings = broker.settings
    with (
        smtp_server() as (mail, port),
        http_server() as (hook, url),
        Collector(settings, f"{topic}/#", client_id="ops") as ops,
    ):
        services.settings = services.settings.model_copy(update={"mqtt": settings})
        evaluator = evaluator_for(
            services, apprise=[mailto(port)], webhooks=[url], mqtt_topic=topic
        )
        evaluator.begin(loop=False)  # connect the MQTT link; the test drives the passes
        try:
            assert evaluator._link.wait_connected(10)
            now = time.time()
            fail_a_run(services, now)
            evaluator.evaluate(now)
            assert evaluator.sender.send_due() == 3
            forget_the_run(services)
            evaluator.evaluate(now + 10)
            assert evaluator.sender.send_due(now + 10) == 3
        finally:
            evaluator.stop()
        assert wait_until(lambda: len(ops.messages) >= 3)
        mails, posts, published = mail.received(), hook.received(), ops.messages

    assert [d.state for d in deliveries(services)] == ["delivered"] * 6
    assert [to for to, _ in mails] == [["ops@example.com"]] * 2
    subjects = [m["Subject"] for _, m in mails]
    assert subjects == ["[EdgeCascade FIRING] training: s1", "[EdgeCascade resolved] training: s1"]
    plain = mails[0][1].get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert "training run run-1 of site s1 failed: no verdicts to train on" in body

    assert [p["state"] for p in posts] == ["firing", "resolved"]
    assert posts[0]["rule"] == "training" and posts[0]["item"] == "run-1"
    assert posts[0]["id"] == posts[1]["id"]  # one alert, two events

    alert_topic = f"{topic}/s1/training/{posts[0]['id']}"
    assert [(m.topic, m.payload[:1]) for m in published] == [
        (alert_topic, b"{"),
        (alert_topic, b"{"),
        (alert_topic, b""),  # the retained firing message cleared
    ]
    assert [json.loads(m.payload)["state"] for m in published[:2]] == ["firing", "resolved"]


def test_a_webhook_answering_500_is_retried_with_backoff_then_given_up_and_kept(
    services: Services,
) -> None:
    with http_server(status=500) as (hook, url):
        evaluator = evaluator_for(
            services, webhooks=[url], retry_first_s=30, retry_max_s=60, max_attempts=3
        )
        now = time.time()
        fail_a_run(services, now)
        evaluator.evaluate(now)
        assert evaluator.sender.send_due(now) == 1
        [delivery] = deliveries(services)
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert "answered 500" in delivery.last_error and "127.0.0.1" in delivery.last_error
        assert delivery.next_at >= now + 30  # backoff: not due again at once
        assert evaluator.sender.send_due(now + 1) == 0
        assert evaluator.sender.send_due(delivery.next_at) == 1
        [delivery] = deliveries(services)
        assert delivery.attempts == 2 and delivery.next_at >= now + 60  # doubled
        assert evaluator.sender.send_due(delivery.next_at) == 1
        assert len(hook.received()) == 3
    [delivery] = deliveries(services)
    assert (delivery.state, delivery.attempts) == ("failed", 3)  # given up on, still recorded
    assert evaluator.sender.send_due(now + 10_000) == 0
    assert [retry_delay(evaluator.settings.alerts, n) for n in (1, 2, 3)] == [30, 60, 60]


def test_a_hanging_webhook_times_out_without_holding_up_the_other_channel(
    services: Services,
) -> None:
    with hanging_server() as stuck, http_server() as (hook, url):
        evaluator = evaluator_for(services, webhooks=[stuck, url], timeout_s=0.5)
        now = time.time()
        fail_a_run(services, now)
        evaluator.evaluate(now)
        assert evaluator.sender.send_due(now) == 2
    by_channel = {d.channel: d for d in deliveries(services)}
    assert by_channel["webhook:1"].state == "delivered"
    assert len(hook.received()) == 1
    hung = by_channel["webhook:0"]
    assert hung.state == "pending" and hung.attempts == 1
    assert "timed out" in hung.last_error


def test_a_refusing_smtp_server_is_a_recorded_failure_then_delivered_on_retry(
    services: Services,
) -> None:
    with smtp_server(refuse="554 5.7.1 relaying refused") as (mail, port):
        evaluator = evaluator_for(services, apprise=[mailto(port)])
        now = time.time()
        fail_a_run(services, now)
        evaluator.evaluate(now)
        evaluator.sender.send_due(now)
        [delivery] = deliveries(services)
        assert delivery.state == "pending" and delivery.attempts == 1
        assert delivery.last_error.startswith(f"apprise mailto://127.0.0.1:{port} failed")
        assert mail.received() == []

        mail.refuse = None  # the server accepts again: the retry delivers it
        evaluator.sender.send_due(delivery.next_at)
        [delivery] = deliveries(services)
        assert (delivery.state, delivery.attempts) == ("delivered", 2)
        assert len(mail.received()) == 1


def test_a_notification_not_yet_sent_is_sent_after_a_restart(services: Services) -> None:
    with http_server() as (hook, url):
        before = evaluator_for(services, webhooks=[url])
        now = time.time()
        fail_a_run(services, now)
        before.evaluate(now)  # fired and queued, then the process stops before sending
        before.stop()
        assert hook.received() == []

        after = evaluator_for(services, webhooks=[url])  # a new process on the same database
        assert after.sender.send_due() == 1
        after.evaluate(now + 1)  # still failing: the same alert, nothing new to send
        assert after.sender.send_due() == 0
    assert [p["state"] for p in hook.received()] == ["firing"]


def test_an_unknown_apprise_url_or_a_channel_gone_from_the_settings_fails_clearly(
    services: Services,
) -> None:
    evaluator = evaluator_for(services, apprise=["nosuchservice://x"], webhooks=[])
    now = time.time()
    fail_a_run(services, now)
    evaluator.evaluate(now)
    with services.sessions() as db:  # a delivery queued when there were two webhooks
        [queued] = db.scalars(select(AlertDelivery))
        db.add(AlertDelivery(**{**_columns(queued), "id": "d-2", "channel": "webhook:1"}))
        db.commit()
    evaluator.sender.send_due(now)
    errors = {d.channel: d.last_error for d in deliveries(services)}
    assert errors == {
        "apprise:0": "apprise does not understand the URL nosuchservice://x",
        "webhook:1": "channel 'webhook:1' is not in the settings (any more)",
    }


def _columns(row: AlertDelivery) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in AlertDelivery.__table__.columns}


def test_the_cloud_process_evaluates_and_delivers_on_its_own(
    cloud_settings: CloudSettings, broker: MosquittoBroker
) -> None:
    """The evaluator and the sender as open_services starts them: threads, not test calls."""
    with http_server() as (hook, url):
        alerts = AlertsSection(rules=[RULE], webhooks=[url], interval_s=0.2)
        settings = cloud_settings.model_copy(update={"mqtt": broker.settings, "alerts": alerts})
        services = open_services(settings)
        try:
            fail_a_run(services, time.time())
            assert wait_until(lambda: len(hook.received()) == 1)
            assert hook.received()[0]["item"] == "run-1"
            forget_the_run(services)
            assert wait_until(lambda: len(hook.received()) == 2)
            assert [p["state"] for p in hook.received()] == ["firing", "resolved"]
        finally:
            services.close()
