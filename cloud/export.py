"""Export the verdicts as a dataset: every stored frame the cloud judged becomes a sample.

``edgecascade cloud dataset export`` and the training orchestrator both call
:func:`export_dataset`, which selects the escalations (audit samples included) that have a
verdict, within a site and a capture-time window, and writes them with
:func:`cloud.dataset.write_dataset`. The label is a person's where one was given
(:mod:`cloud.labels`), else the cloud's top-1; the soft targets are the cloud model's
distribution mapped onto the edge model's labels by name (:func:`soft_targets`).

The dataset's labels are those of the edge model of the newest frame selected (the model a
fine-tune would start from). A sample the dataset cannot hold is skipped, not fatal, and counted
with its reason: a frame missing from the blob store or not decodable, a label the edge model does
not have. A selection that is empty, or a site the cloud never heard of, is an error
(:class:`~cloud.errors.DatasetError`), so that a mistyped filter is not a silent empty dataset.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import BlobNotFound, BlobStore
from edgecascade.cloud.dataset import (
    DatasetFilters,
    DatasetManifest,
    Sample,
    SampleSplit,
    sample_file,
    split_for,
    write_dataset,
)
from edgecascade.cloud.db.models import Escalation, LabelOverride, Result, Site, Verdict
from edgecascade.cloud.errors import DatasetError
from edgecascade.cloud.labels import final_label, model_labels

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SkippedSample:
    id: str
    reason: str


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote, and what it left out and why."""

    out: Path
    manifest: DatasetManifest
    by_label: dict[str, int]
    by_source: dict[str, int]
    holdout: int
    audit: int
    skipped: list[SkippedSample] = field(default_factory=list)


def soft_targets(
    verdict: Any, edge_labels: Sequence[str], cloud_labels: Sequence[str] | None = None
) -> list[float] | None:
    """The cloud's distribution over the edge model's labels, by name, renormalised; None when
    the verdict kept no distribution (no ``probs``), the cloud model's labels are unknown, or an
    edge label is not one of the cloud model's."""
    probs = getattr(verdict, "probs", None)
    if not probs:
        return None
    if cloud_labels is None:
        cloud_labels = labels_from_top(verdict.top, len(probs))
    if cloud_labels is None or len(cloud_labels) != len(probs):
        return None
    index = {label: i for i, label in enumerate(cloud_labels)}
    if any(label not in index for label in edge_labels):
        return None
    values = [float(probs[index[label]]) for label in edge_labels]
    total = sum(values)
    if not math.isfinite(total) or total <= 0 or any(v < 0 for v in values):
        return None
    return [v / total for v in values]


def labels_from_top(top: Sequence[Any], size: int) -> list[str] | None:
    """A model's labels from a top-k that covers every one of its ``size`` outputs."""
    by_index = {int(entry["index"]): str(entry["label"]) for entry in top}
    if sorted(by_index) != list(range(size)):
        return None
    return [by_index[i] for i in range(size)]


def export_dataset(
    session: Session,
    blobs: BlobStore,
    filters: DatasetFilters,
    out: Path,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the verdicts selected by ``filters`` as a dataset in ``out`` (a new folder)."""
    if out.exists():
        raise DatasetError(f"{out}: already exists; a dataset is written into a new folder")
    rows = _select(session, filters)
    newest = max(rows, key=lambda row: (row[0].captured_at, row[0].msg_id))[0]
    edge = f"{newest.model_name}@{newest.model_version}"
    labels = model_labels(session, newest.model_name, newest.model_version)
    if labels is None:
        raise DatasetError(
            f"the labels of edge model {edge} are unknown: it is not in the registry and no "
            "result of it names its labels"
        )
    cloud_labels: dict[tuple[str, str], list[str] | None] = {}
    items: list[tuple[Sample, bytes]] = []
    skipped: list[SkippedSample] = []
    for done, (escalation, verdict, override, edge_top) in enumerate(rows, 1):
        key = (verdict.model_name, verdict.model_version)
        if key not in cloud_labels:
            cloud_labels[key] = model_labels(session, *key)
        try:
            sample = _sample(escalation, verdict, override, edge_top, labels, cloud_labels[key])
            content = _frame(blobs, escalation)
        except ValueError as exc:
            skipped.append(SkippedSample(escalation.msg_id, str(exc)))
            logger.warning("export: skipped %s: %s", escalation.msg_id, exc)
        else:
            items.append((sample, content))
        if progress is not None:
            progress(done, len(rows))
    if not items:
        raise DatasetError(f"every one of the {len(rows)} selected frames was skipped: {skipped}")
    manifest = write_dataset(out, labels=labels, items=items, filters=filters)
    samples = [sample for sample, _ in items]
    return ExportSummary(
        out=out,
        manifest=manifest,
        by_label=dict(sorted(Counter(s.label for s in samples).items())),
        by_source=dict(sorted(Counter(str(s.label_source) for s in samples).items())),
        holdout=sum(s.split is SampleSplit.HOLDOUT for s in samples),
        audit=sum(s.audit for s in samples),
        skipped=skipped,
    )


Row = tuple[Escalation, Verdict, LabelOverride | None, list[Any] | None]


def _select(session: Session, filters: DatasetFilters) -> list[Row]:
    """The escalations with a verdict in the filters; refuses an unknown site and an empty
    selection."""
    # Classification frames: a detection verdict's label is not the class of its frame.
    where: list[ColumnElement[bool]] = [Verdict.task == "classification"]
    if filters.site is not None:
        if session.get(Site, filters.site) is None:
            known = ", ".join(session.scalars(select(Site.id).order_by(Site.id))) or "none"
            raise DatasetError(f"unknown site {filters.site!r}; the sites are: {known}")
        where.append(Escalation.site_id == filters.site)
    if filters.since is not None:
        where.append(Escalation.captured_at >= filters.since)
    if filters.until is not None:
        where.append(Escalation.captured_at < filters.until)
    query = (
        select(Escalation, Verdict, LabelOverride, Result.top)
        .join(Verdict, Verdict.escalation_id == Escalation.msg_id)
        .outerjoin(LabelOverride, LabelOverride.escalation_id == Escalation.msg_id)
        .outerjoin(Result, Result.msg_id == Escalation.result_id)
        .where(*where)
        .order_by(Escalation.captured_at, Escalation.msg_id)
    )
    rows: list[Row] = [(e, v, o, t) for e, v, o, t in session.execute(query)]
    if not rows:
        chosen = filters.model_dump(exclude_none=True) or "none"
        raise DatasetError(f"no frame with a cloud verdict matches the filters ({chosen})")
    return rows


def _sample(
    escalation: Escalation,
    verdict: Verdict,
    override: LabelOverride | None,
    edge_top: list[Any] | None,
    labels: Sequence[str],
    cloud_labels: Sequence[str] | None,
) -> Sample:
    """The manifest line of one frame; ``ValueError`` when the dataset cannot hold it."""
    final = final_label(verdict, override)
    label, source = final.label, final.source
    assert label is not None and source is not None  # a verdict is always there
    if label not in labels:
        raise ValueError(f"label {label!r} ({source}) is not one of the edge model's labels")
    if PurePosixPath(label).name != label or label in (".", ".."):
        raise ValueError(f"label {label!r} cannot name a folder")
    return Sample(
        id=escalation.msg_id,
        file=sample_file(label, escalation.msg_id, PurePosixPath(escalation.blob_path).suffix),
        label=label,
        label_index=list(labels).index(label),
        label_source=source,
        soft=soft_targets(verdict, labels, cloud_labels),
        cloud_top=verdict.top,
        edge_top=edge_top,
        edge_label=escalation.edge_label,
        edge_score=escalation.edge_score,
        site=escalation.site_id,
        device=escalation.device_id,
        captured_at=escalation.captured_at,
        edge_model=f"{escalation.model_name}@{escalation.model_version}",
        cloud_model=f"{verdict.model_name}@{verdict.model_version}",
        audit=bool(getattr(escalation, "audit", False)),
        split=split_for(escalation.msg_id),
    )


def _frame(blobs: BlobStore, escalation: Escalation) -> bytes:
    """The stored frame, checked to decode; ``ValueError`` when missing or corrupt."""
    import cv2
    import numpy as np

    try:
        content = blobs.get(escalation.blob_path)
    except (BlobNotFound, OSError) as exc:
        raise ValueError(f"frame {escalation.blob_path} missing from the blob store") from exc
    image = cv2.imdecode(np.frombuffer(content, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ValueError(f"frame {escalation.blob_path} is not a decodable image")
    return content
