"""Verdict datasets for tests: ``make_sample`` and ``write_image_dataset``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud.dataset import (
    DatasetManifest,
    LabelSource,
    Sample,
    sample_file,
    split_for,
    write_dataset,
)


def make_sample(sample_id: str, label: str, labels: Sequence[str], **overrides: Any) -> Sample:
    """A valid cloud-labelled sample of ``label`` with a peaked soft vector."""
    index = list(labels).index(label)
    rest = 0.1 / (len(labels) - 1)
    soft = [0.9 if i == index else rest for i in range(len(labels))]
    fields: dict[str, Any] = {
        "id": sample_id,
        "file": sample_file(label, sample_id, "png"),
        "label": label,
        "label_index": index,
        "label_source": LabelSource.CLOUD,
        "soft": soft,
        "cloud_top": [{"index": index, "label": label, "score": 0.9}],
        "edge_top": None,
        "edge_label": label,
        "edge_score": 0.5,
        "site": "site-a",
        "device": "cam-1",
        "captured_at": 1_700_000_000.0,
        "edge_model": "fashion-edge@1.0.0",
        "cloud_model": "fashion-cloud@1.0.0",
        "audit": False,
        "split": split_for(sample_id),
    }
    fields.update(overrides)
    return Sample.model_validate(fields)


def write_image_dataset(
    dest: Path,
    labels: Sequence[str],
    frames: Sequence[tuple[str, bytes, list[float] | None]],
    **overrides: Any,
) -> DatasetManifest:
    """A dataset of PNG ``frames`` given as (label, encoded image, soft or None)."""
    items = []
    for n, (label, content, soft) in enumerate(frames):
        sample = make_sample(f"msg-{n:05d}", label, labels, captured_at=1_700_000_000.0 + n)
        items.append((sample.model_copy(update={"soft": soft, **overrides}), content))
    return write_dataset(dest, labels=labels, items=items, snapshot_id="snap-test")
