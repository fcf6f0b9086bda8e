"""What each rule kind measures over the stored data: the subjects breaching it right now.

One function per kind, each a read of the tables the ingest, the workers, the rollout controller
and the trainer write; none keeps state (``for_s`` and the firing/resolved state are
:mod:`cloud.alerts.state`'s). A subject without enough data (fewer than ``min_samples``, no
telemetry in the window, an agent that does not report its outbox bytes) does not breach: it
never fires on a guess, and an alert already firing for it resolves once nothing in the window
shows the condition any more (a device that stops reporting is the ``offline`` rule's business).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.accuracy import tallies
from edgecascade.cloud.alerts.config import AlertKind, AlertRule
from edgecascade.cloud.db.alert_models import DeviceCondition
from edgecascade.cloud.db.models import Device, Result, Rollout, Telemetry, TrainingRun

SOURCE_MARK = "source "  # the agent's state detail: "<host>; source <status>"
LOST_STATUSES = ("reconnecting",)
ROLLED_BACK_STATES = ("rolling_back", "rolled_back")
# Keys of TelemetryMessage.queues the agent and the gateway report their outbox size under.
OUTBOX_BYTES, OUTBOX_QUOTA = "outbox_bytes", "outbox_quota_bytes"


@dataclass(frozen=True, slots=True)
class Breach:
    """A subject that breaches a rule now, with the value measured and a sentence for people."""

    site: str | None
    device: str | None
    item: str | None
    value: float | None
    message: str


def measure(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    """The subjects in the rule's scope that breach it at ``now``."""
    return _MEASURES[rule.kind](session, rule, now)


def _scoped(query: Any, entity: Any, rule: AlertRule) -> Any:
    if rule.site is not None:
        query = query.where(entity.site_id == rule.site)
    if rule.device is not None:
        query = query.where(entity.device_id == rule.device)
    return query


def _offline(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    """Offline (its state says so, or its LWT did) or silent for ``threshold`` seconds."""
    assert rule.threshold is not None
    query = _scoped(select(Device), Device, rule)
    found = []
    for dev in session.scalars(query):
        said_offline = dev.status == "offline"
        since = (dev.last_state_at or dev.last_seen) if said_offline else dev.last_seen
        quiet = now - since
        if quiet >= rule.threshold:
            what = dev.role or "device"
            how = "offline" if said_offline else "not heard from"
            found.append(
                Breach(
                    dev.site_id,
                    dev.device_id,
                    None,
                    quiet,
                    f"{what} {dev.site_id}/{dev.device_id} {how} for {quiet:.0f} s",
                )
            )
    return found


def source_status(detail: str) -> str | None:
    """The camera source's status in an agent's state detail, or None if it reports none."""
    _, mark, status = detail.rpartition(SOURCE_MARK)
    return status.strip() if mark else None


def _stream_lost(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    """An online agent whose newest state says its camera source is reconnecting."""
    query = _scoped(
        select(DeviceCondition).where(DeviceCondition.status == "online"), DeviceCondition, rule
    )
    found = []
    for cond in session.scalars(query):
        status = source_status(cond.detail)
        if status is not None and status.startswith(LOST_STATUSES):
            lost = max(0.0, now - cond.ts)
            found.append(
                Breach(
                    cond.site_id,
                    cond.device_id,
                    None,
                    lost,
                    f"camera stream of {cond.site_id}/{cond.device_id} lost: {status}",
                )
            )
    return found


def _escalation_rate(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    assert rule.threshold is not None
    escalated = func.sum(case((Result.escalated, 1), else_=0))
    query = (
        select(Result.site_id, Result.device_id, func.count(), escalated)
        .where(Result.captured_at >= now - rule.window_s)
        .group_by(Result.site_id, Result.device_id)
    )
    found = []
    for site, device, n, up in session.execute(_scoped(query, Result, rule)):
        rate = int(up or 0) / n
        if n >= rule.min_samples and rate > rule.threshold:
            message = (
                f"{site}/{device} escalated {rate:.1%} of {n} results over "
                f"{rule.window_s:g} s (threshold {rule.threshold:.1%})"
            )
            found.append(Breach(site, device, None, rate, message))
    return found


def _verdict_rates(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    """Disagreement (escalated frames, biased upwards) or the audit accuracy estimate."""
    assert rule.threshold is not None
    found = []
    for tally in tallies(session, rule.site, now - rule.window_s):
        model = f"{tally.model_name}@{tally.model_version}"
        if rule.kind is AlertKind.DISAGREEMENT:
            n, value = tally.escalated, tally.disagreeing / max(1, tally.escalated)
            breached = value > rule.threshold
            what = "disagreement on escalated frames"
        else:
            n, value = tally.audited, tally.agreeing / max(1, tally.audited)
            breached = value < rule.threshold
            what = "accuracy estimated from audit samples"
        if n >= rule.min_samples and breached:
            message = (
                f"site {tally.site}, {model}: {what} {value:.1%} over {n} verdicts "
                f"(threshold {rule.threshold:.1%})"
            )
            found.append(Breach(tally.site, None, model, value, message))
    return found


def _newest_telemetry(session: Session, rule: AlertRule, now: float) -> list[Telemetry]:
    """Each device's newest telemetry row of the window."""
    newest = _scoped(
        select(Telemetry.site_id, Telemetry.device_id, func.max(Telemetry.ts).label("ts"))
        .where(Telemetry.ts >= now - rule.window_s)
        .group_by(Telemetry.site_id, Telemetry.device_id),
        Telemetry,
        rule,
    ).subquery()
    query = select(Telemetry).join(
        newest,
        (Telemetry.site_id == newest.c.site_id)
        & (Telemetry.device_id == newest.c.device_id)
        & (Telemetry.ts == newest.c.ts),
    )
    return list(session.scalars(query))


def _temperature(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    assert rule.threshold is not None
    found = []
    for row in _newest_telemetry(session, rule, now):
        temp = row.temperature_c
        if temp is not None and temp > rule.threshold:
            message = (
                f"{row.site_id}/{row.device_id} at {temp:.1f} °C (threshold {rule.threshold:g})"
            )
            found.append(Breach(row.site_id, row.device_id, None, temp, message))
    return found


def _outbox(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    assert rule.threshold is not None
    found = []
    for row in _newest_telemetry(session, rule, now):
        queues = row.payload.get("queues") or {}
        used, quota = queues.get(OUTBOX_BYTES), queues.get(OUTBOX_QUOTA)
        if not isinstance(used, int) or not isinstance(quota, int) or quota <= 0:
            continue  # an agent or gateway that does not report it: not judged
        percent = 100.0 * used / quota
        if percent > rule.threshold:
            message = (
                f"outbox of {row.site_id}/{row.device_id} at {percent:.1f} % of its "
                f"{quota} byte quota (threshold {rule.threshold:g} %)"
            )
            found.append(Breach(row.site_id, row.device_id, None, percent, message))
    return found


def _rolled_back(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    query = select(Rollout).where(
        Rollout.state.in_(ROLLED_BACK_STATES), Rollout.updated_at >= now - rule.window_s
    )
    if rule.site is not None:
        query = query.where(Rollout.site_id == rule.site)
    return [
        Breach(
            r.site_id,
            None,
            r.id,
            None,
            f"rollout {r.id} of {r.model_name}@{r.model_version} at site {r.site_id} "
            f"{r.state.replace('_', ' ')}: {r.reason}",
        )
        for r in session.scalars(query)
    ]


def _training_failed(session: Session, rule: AlertRule, now: float) -> list[Breach]:
    query = select(TrainingRun).where(
        TrainingRun.state == "failed", TrainingRun.finished_at >= now - rule.window_s
    )
    if rule.site is not None:
        query = query.where(TrainingRun.site_id == rule.site)
    return [
        Breach(
            r.site_id,
            None,
            r.id,
            None,
            f"training run {r.id} of site {r.site_id} failed: {r.reason}",
        )
        for r in session.scalars(query)
    ]


_MEASURES: dict[AlertKind, Callable[[Session, AlertRule, float], list[Breach]]] = {
    AlertKind.OFFLINE: _offline,
    AlertKind.STREAM_LOST: _stream_lost,
    AlertKind.ESCALATION_RATE: _escalation_rate,
    AlertKind.DISAGREEMENT: _verdict_rates,
    AlertKind.ACCURACY: _verdict_rates,
    AlertKind.OUTBOX: _outbox,
    AlertKind.TEMPERATURE: _temperature,
    AlertKind.ROLLED_BACK: _rolled_back,
    AlertKind.TRAINING_FAILED: _training_failed,
}
