"""Verdict datasets for tests: ``make_sample``, ``fashion_drift_dataset`` and ``trainable_copy``."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecascade.cloud.dataset import (
    DatasetManifest,
    LabelSource,
    Sample,
    sample_file,
    split_for,
    write_dataset,
)
from edgecascade.shared.runtime.card import ModelCard, TrainableSource


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


def fashion_drift_dataset(dest: Path, count: int, first: int = 2000) -> DatasetManifest:
    """``count`` Fashion-MNIST test images from index ``first`` (past the committed eval
    sample), under the default drift, as verdicts of a cloud model that stays right under the
    drift: soft = 0.8 * one-hot(true label) + 0.2 * the committed cloud model's distribution.
    Every fifth sample is labelled by a person. Needs Debian's dataset-fashion-mnist."""
    import cv2
    import numpy as np

    from edgecascade.modelzoo.drift import DEFAULT_DRIFT, apply_drift
    from edgecascade.modelzoo.fashion import DATA_DIR, LABELS, load_split
    from edgecascade.shared.runtime.runtime import ModelRuntime
    from tests.utils.paths import CLOUD_MODEL

    test = load_split(DATA_DIR, "test")
    cloud = ModelRuntime.load(CLOUD_MODEL)
    rng = np.random.default_rng(1)
    items = []
    for n in range(first, first + count):
        image = apply_drift(test.images[n], DEFAULT_DRIFT, rng)
        truth = int(test.labels[n])
        soft = 0.2 * cloud.classify(image).probabilities.astype(np.float64)
        soft[truth] += 0.8
        label = LABELS[truth]
        sample = make_sample(
            f"frame-{n:05d}",
            label,
            LABELS,
            soft=[float(p) for p in soft / soft.sum()],
            label_source=LabelSource.HUMAN if n % 5 == 0 else LabelSource.CLOUD,
            captured_at=1_700_000_000.0 + n,
        )
        ok, png = cv2.imencode(".png", image)
        assert ok
        items.append((sample, png.tobytes()))
    return write_dataset(dest, labels=LABELS, items=items, snapshot_id=f"drift{first}x{count}")


def trainable_copy(model: Path, dest: Path, weights: bytes) -> Path:
    """A copy of ``model`` and its card in ``dest`` whose card names ``weights`` (written beside
    it) as its trainable source: for tests that stop before the weights are loaded."""
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / model.name
    shutil.copyfile(model, copy)
    (dest / "weights.pt").write_bytes(weights)
    card = ModelCard.load(model.with_suffix(".json")).model_copy(
        update={
            "trainable": TrainableSource(
                architecture="fashion-edge-cnn",
                weights="weights.pt",
                weights_sha256=hashlib.sha256(weights).hexdigest(),
            )
        }
    )
    card.save(copy.with_suffix(".json"))
    return copy
