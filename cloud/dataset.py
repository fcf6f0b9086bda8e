"""The verdict dataset on disk: what ``cloud dataset export`` writes and ``cloud train`` reads.

A dataset is a folder any external trainer can use: an ImageFolder (``images/<label>/<id>.<ext>``),
a JSONL manifest with one sample per line (the cloud's soft targets, both models' top-k, where and
when the frame was captured) and ``dataset.json`` naming the snapshot, the label order and the
manifest's sha256. The held-out slice is decided by the sample id alone (:func:`holdout`), so it
is the same in every export and every run, and a model is never evaluated on frames it trained on.

The reader refuses what a trainer must not silently learn from: a corrupt manifest line, a missing
or undecodable image, a label the model does not have, a soft vector that is not a distribution.
Every error names the file and, for the manifest, the line. No numpy or OpenCV at import: images
are decoded (OpenCV) only when checked.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgecascade.cloud.errors import DatasetError

logger = logging.getLogger(__name__)

DATASET_FORMAT = "edgecascade-dataset/1"
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
HOLDOUT_PERCENT = 20
SOFT_SUM_TOLERANCE = 0.01


class LabelSource(StrEnum):
    HUMAN = "human"
    CLOUD = "cloud"


class SampleSplit(StrEnum):
    TRAIN = "train"
    HOLDOUT = "holdout"


def holdout(sample_id: str) -> bool:
    """Whether a sample belongs to the held-out slice: sha256(id) mod 100 < 20."""
    digest = hashlib.sha256(sample_id.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % 100 < HOLDOUT_PERCENT


def split_for(sample_id: str) -> SampleSplit:
    return SampleSplit.HOLDOUT if holdout(sample_id) else SampleSplit.TRAIN


def sample_file(label: str, sample_id: str, extension: str = "jpg") -> str:
    """The ImageFolder path of a sample's frame, relative to the dataset folder."""
    return f"images/{label}/{sample_id}.{extension.lstrip('.')}"


class DatasetFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str | None = Field(None, description="Only frames of this site; None: every site.")
    since: float | None = Field(None, description="Only frames captured at or after (epoch s).")
    until: float | None = Field(None, description="Only frames captured before (epoch s).")


class DatasetManifest(BaseModel):
    """``dataset.json``: the snapshot as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["edgecascade-dataset/1"] = Field(
        "edgecascade-dataset/1", description="Format id (DATASET_FORMAT)."
    )
    snapshot_id: str = Field(min_length=1, description="Stable id of this export.")
    created_at: float = Field(description="When it was exported (epoch seconds).")
    labels: list[str] = Field(min_length=1, description="The edge model's labels, index order.")
    filters: DatasetFilters = Field(default_factory=DatasetFilters)
    count: int = Field(ge=0, description="Lines in manifest.jsonl.")
    manifest_sha256: str = Field(description="sha256 of manifest.jsonl as written.")


class TopEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0, description="Output index.")
    label: str = Field(description="Label at that index.")
    score: float = Field(description="Probability.")


class Sample(BaseModel):
    """One line of ``manifest.jsonl``: a stored frame with its verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="The escalation's msg_id.")
    file: str = Field(description="images/<label>/<id>.<ext>, relative to the dataset.")
    label: str = Field(description="The label trained on (human wins over cloud).")
    label_index: int = Field(ge=0, description="Index of label in the dataset's labels.")
    label_source: LabelSource = Field(description="Who gave the label.")
    soft: list[float] | None = Field(
        None, description="The cloud's distribution over the labels; None: only a top-k kept."
    )
    cloud_top: list[TopEntry] = Field(default_factory=list, description="The cloud's top-k.")
    edge_top: list[TopEntry] | None = Field(None, description="The edge model's top-k.")
    edge_label: str = Field(description="The edge model's top-1 label.")
    edge_score: float = Field(description="The edge model's top-1 probability.")
    site: str = Field(description="Site of the device.")
    device: str = Field(description="Device id.")
    captured_at: float = Field(description="Capture time (epoch seconds).")
    edge_model: str = Field(description="name@version of the edge model.")
    cloud_model: str = Field(description="name@version of the cloud model.")
    audit: bool = Field(False, description="A random audit sample, not an escalation.")
    split: SampleSplit = Field(description="train or holdout, from holdout(id).")


def check_sample(sample: Sample, labels: Sequence[str]) -> None:
    """Raise ``ValueError`` when a sample does not fit the dataset's labels."""
    if sample.label not in labels:
        raise ValueError(f"label {sample.label!r} is not one of the dataset's labels {labels}")
    if sample.label_index >= len(labels) or labels[sample.label_index] != sample.label:
        raise ValueError(f"label_index {sample.label_index} is not the index of {sample.label!r}")
    if sample.soft is not None:
        if len(sample.soft) != len(labels):
            raise ValueError(f"soft has {len(sample.soft)} values for {len(labels)} labels")
        if any(not math.isfinite(p) or p < 0.0 for p in sample.soft):
            raise ValueError("soft has a negative or non-finite value")
        if abs(sum(sample.soft) - 1.0) > SOFT_SUM_TOLERANCE:
            raise ValueError(f"soft sums to {sum(sample.soft):.4f}, not 1")
    if sample.split is not split_for(sample.id):
        raise ValueError(f"split {sample.split} contradicts holdout(id) for {sample.id!r}")
    path = PurePosixPath(sample.file)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != ("images",):
        raise ValueError(f"file {sample.file!r} is not inside images/")


def write_dataset(
    dest: Path,
    *,
    labels: Sequence[str],
    items: Iterable[tuple[Sample, bytes]],
    filters: DatasetFilters | None = None,
    snapshot_id: str | None = None,
    created_at: float | None = None,
) -> DatasetManifest:
    """Write samples and their encoded frames as a dataset at ``dest`` (which must not exist).

    Written into a temporary sibling folder and renamed at the end: a crash leaves no dataset.
    ``snapshot_id`` defaults to the first 16 hex digits of the manifest's sha256.
    """
    if dest.exists():
        raise DatasetError(f"{dest}: already exists; a dataset is written into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        ordered = sorted(items, key=lambda item: (item[0].captured_at, item[0].id))
        lines = []
        for sample, content in ordered:
            try:
                check_sample(sample, labels)
            except ValueError as exc:
                raise DatasetError(f"sample {sample.id}: {exc}") from exc
            target = staging / sample.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            lines.append(sample.model_dump_json() + "\n")
        manifest_bytes = "".join(lines).encode("utf-8")
        (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        manifest = DatasetManifest(
            snapshot_id=snapshot_id or digest[:16],
            created_at=time.time() if created_at is None else created_at,
            labels=list(labels),
            filters=filters or DatasetFilters(),
            count=len(lines),
            manifest_sha256=digest,
        )
        (staging / DATASET_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("wrote dataset %s: %d samples to %s", manifest.snapshot_id, manifest.count, dest)
    return manifest


def read_dataset(
    directory: Path, *, check_images: bool = True
) -> tuple[DatasetManifest, list[Sample]]:
    """Read and check a dataset; ``check_images`` also decodes every frame (OpenCV)."""
    manifest = _read_manifest(directory / DATASET_FILE)
    manifest_path = directory / MANIFEST_FILE
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{manifest_path}: cannot read: {exc.strerror}") from exc
    if hashlib.sha256(raw).hexdigest() != manifest.manifest_sha256:
        raise DatasetError(f"{manifest_path}: sha256 differs from {DATASET_FILE}'s manifest_sha256")
    samples, seen = [], set()
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        where = f"{manifest_path} line {number}"
        try:
            sample = Sample.model_validate_json(line)
            check_sample(sample, manifest.labels)
        except (ValidationError, ValueError) as exc:
            raise DatasetError(f"{where}: {exc}") from exc
        if sample.id in seen:
            raise DatasetError(f"{where}: duplicate id {sample.id!r}")
        seen.add(sample.id)
        if check_images:
            _check_image(directory / sample.file, where)
        samples.append(sample)
    if len(samples) != manifest.count:
        raise DatasetError(
            f"{manifest_path}: {len(samples)} samples, {DATASET_FILE} says {manifest.count}"
        )
    return manifest, samples


def _read_manifest(path: Path) -> DatasetManifest:
    try:
        return DatasetManifest.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValidationError as exc:
        raise DatasetError(f"{path}: invalid dataset description: {exc}") from exc


def _check_image(path: Path, where: str) -> None:
    import cv2
    import numpy as np

    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{where}: image {path} cannot be read: {exc.strerror}") from exc
    image = cv2.imdecode(np.frombuffer(content, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise DatasetError(f"{where}: image {path} is not a decodable 8-bit image")
