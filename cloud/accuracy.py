"""The edge model's live accuracy against the cloud model, from audit samples only.

Agents upload a seeded-random fraction of the frames they were sure of (``escalation.
audit_fraction``) as escalations marked ``audit``; the workers judge them like any other. Those
verdicts are a random sample of what the edge answers on its own, so their agreement rate is an
unbiased estimate of the edge's accuracy there (the cloud model taken as right), given here with a
95 % Wilson score interval, per site and edge model (name and version).

The escalated frames' disagreement is kept beside it and always labelled biased: the policy picked
those frames *because* the edge was unsure, so they say how often it is wrong when unsure, not how
often it is wrong.

What counts as the right label is decided in one place, :func:`judged`: a person's label
(``label_overrides``) where one was given, else the cloud's top-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.db.models import LabelOverride, Verdict

CONFIDENCE = 0.95
BIASED_NOTE = (
    "escalated frames only: the policy picked them because the edge was unsure, so their "
    "disagreement overstates the edge's error rate; the audit estimate is the unbiased one"
)


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: ``successes`` of ``trials``.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or ``trials``
    successes, which matters for the small samples an audit gives. No trials: (0, 1).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes of {trials} trials")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} is not between 0 and 1")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, n, z2 = successes / trials, trials, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or all successes one end is exactly 0 or 1; the floats would miss it by an ulp.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True, slots=True)
class Tally:
    """The verdicts of one site and edge model: audit samples and escalations apart."""

    site: str
    model_name: str
    model_version: str
    audited: int = 0
    agreeing: int = 0  # audit samples whose edge top-1 is the right label
    escalated: int = 0
    disagreeing: int = 0  # escalations whose edge top-1 is not the right label


def judged(site: str | None, since: float | None) -> Select[str, str, str, bool, bool]:
    """One row per verdict in scope: site, edge model name and version, audit, and whether the
    edge's top-1 is the right label.

    The right label is a person's (``label_overrides``) where one was given, else the cloud's
    top-1. A detection verdict is right when every box matched both ways (its ``agrees``).
    """
    right = func.coalesce(LabelOverride.label, Verdict.label)
    agrees = case((Verdict.task == "detection", Verdict.agrees), else_=Verdict.edge_label == right)
    query = select(
        Verdict.site_id,
        Verdict.edge_model_name,
        Verdict.edge_model_version,
        Verdict.audit,
        agrees.label("agrees"),
    ).outerjoin(LabelOverride, LabelOverride.escalation_id == Verdict.escalation_id)
    if site is not None:
        query = query.where(Verdict.site_id == site)
    if since is not None:
        query = query.where(Verdict.created_at >= since)
    return query


def tallies(session: Session, site: str | None = None, since: float | None = None) -> list[Tally]:
    """Per site and edge model, counted in the database; sorted by site, model, version."""
    rows = judged(site, since).subquery()
    key = (rows.c.site_id, rows.c.edge_model_name, rows.c.edge_model_version)
    counted = session.execute(
        select(
            *key,
            rows.c.audit,
            func.count(),
            func.sum(case((rows.c.agrees, 1), else_=0)),
        ).group_by(*key, rows.c.audit)
    ).all()
    found: dict[tuple[str, str, str], Tally] = {}
    for site_id, name, version, audit, n, agreeing in counted:
        group = (site_id, name, version)
        tally, agreeing = found.get(group, Tally(*group)), int(agreeing or 0)
        if audit:
            found[group] = replace(tally, audited=n, agreeing=agreeing)
        else:
            found[group] = replace(tally, escalated=n, disagreeing=n - agreeing)
    return [found[group] for group in sorted(found)]
