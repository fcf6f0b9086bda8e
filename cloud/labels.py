"""Label overrides: a person confirms or corrects the label of an escalated frame.

The cloud model's verdict is a label the loop trains on; where a person disagrees with it, the
person wins, everywhere a final label is given (the escalations API, the exported dataset). A
label must be one the edge model can output, since that is the model the dataset teaches: the
edge model's labels are those of its registry manifest, or, for a model that was never uploaded
to the registry (a device installed by hand), the labels its results name in their top-k, by
index. A model of which neither is known takes no override: the refusal says so.

The review queue is the disagreements (the cloud's top-1 differs from the edge's) that no person
has labelled yet, newest first: the frames where a human label is worth most.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgecascade.cloud.dataset import LabelSource
from edgecascade.cloud.db.models import Escalation, LabelOverride, ModelVersion, Result, Verdict
from edgecascade.cloud.errors import EscalationNotFound, LabelRejected
from edgecascade.cloud.registry import manifest_of

# Results read to learn an unregistered model's labels from their top-k (the newest ones).
LABEL_SCAN_RESULTS = 2000


@dataclass(frozen=True)
class FinalLabel:
    """The label an escalation ends up with, and who gave it (None: no verdict, no override)."""

    label: str | None
    source: LabelSource | None


def final_label(verdict: Verdict | None, override: LabelOverride | None) -> FinalLabel:
    if override is not None:
        return FinalLabel(override.label, LabelSource.HUMAN)
    if verdict is not None:
        return FinalLabel(verdict.label, LabelSource.CLOUD)
    return FinalLabel(None, None)


def model_labels(session: Session, name: str, version: str) -> list[str] | None:
    """A model's labels in index order: its registry manifest's, else those its newest results
    name in their top-k when they cover every index from 0; None when neither is known."""
    row = session.get(ModelVersion, (name, version))
    if row is not None:
        return list(manifest_of(row).labels)
    tops = session.scalars(
        select(Result.top)
        .where(Result.model_name == name, Result.model_version == version)
        .order_by(Result.captured_at.desc())
        .limit(LABEL_SCAN_RESULTS)
    )
    by_index: dict[int, str] = {}
    for top in tops:
        for entry in top:
            by_index.setdefault(int(entry["index"]), str(entry["label"]))
    if not by_index or sorted(by_index) != list(range(len(by_index))):
        return None
    return [by_index[i] for i in range(len(by_index))]


def check_label(label: str, allowed: Sequence[str] | None, model: str) -> None:
    if allowed is None:
        raise LabelRejected(
            f"the labels of edge model {model} are unknown: it is not in the registry and no "
            "result of it names its labels"
        )
    if label not in allowed:
        raise LabelRejected(
            f"label {label!r} is not one of edge model {model}'s labels: {', '.join(allowed)}"
        )


def set_override(
    session: Session, escalation_id: str, label: str, note: str, created_by: str
) -> LabelOverride:
    """Set (or replace) the person's label of an escalation; refused unless the label is one of
    its edge model's."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise EscalationNotFound(f"no escalation {escalation_id!r}")
    model = f"{escalation.model_name}@{escalation.model_version}"
    allowed = model_labels(session, escalation.model_name, escalation.model_version)
    check_label(label, allowed, model)
    row = session.get(LabelOverride, escalation_id)
    if row is None:
        row = LabelOverride(escalation_id=escalation_id)
        session.add(row)
    row.label, row.note, row.created_by, row.created_at = label, note, created_by, time.time()
    session.commit()
    return row


def withdraw_override(session: Session, escalation_id: str) -> None:
    row = session.get(LabelOverride, escalation_id)
    if row is None:
        raise EscalationNotFound(f"no label override of escalation {escalation_id!r}")
    session.delete(row)
    session.commit()


@dataclass(frozen=True)
class QueueEntry:
    escalation: Escalation
    verdict: Verdict
    labels: list[str] | None


def review_queue(session: Session, site: str | None, limit: int) -> tuple[int, list[QueueEntry]]:
    """Disagreements without a person's label, newest first: (how many in all, the first
    ``limit``) with each edge model's labels."""
    query = (
        select(Escalation, Verdict)
        .join(Verdict, Verdict.escalation_id == Escalation.msg_id)
        .outerjoin(LabelOverride, LabelOverride.escalation_id == Escalation.msg_id)
        .where(
            Verdict.agrees.is_(False),
            LabelOverride.escalation_id.is_(None),
            Verdict.task == "classification",  # a person picks a class, not boxes
        )
    )
    if site is not None:
        query = query.where(Escalation.site_id == site)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Escalation.captured_at.desc(), Escalation.msg_id.desc()).limit(limit)
    ).all()
    known: dict[tuple[str, str], list[str] | None] = {}
    entries = []
    for escalation, verdict in rows:
        key = (escalation.model_name, escalation.model_version)
        if key not in known:
            known[key] = model_labels(session, *key)
        entries.append(QueueEntry(escalation, verdict, known[key]))
    return total, entries
