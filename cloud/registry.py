"""The model registry: uploads checked by loading them, kept by sha256, shipped with a signed
manifest.

An upload is refused, with the reason, when it is larger than ``registry.max_model_mb``, when the
LiteRT interpreter cannot load it, when it is not a classifier with one input and one output, when
its labels do not match its outputs (or none are given and its TFLite metadata carries none), or
when its name and version (or its bytes) are registered already. Without a ``preprocess`` the
preprocessing is read from the model (:mod:`~edgecascade.shared.runtime.describe`). A trainable
source (the architecture the trainer rebuilds and the torch state_dict it fine-tunes) comes with
its weights or not at all, names an architecture of
:data:`TRAINABLE_ARCHITECTURES` and the weights' sha256; the weights are kept beside the model.
What the interpreter reports (input and output tensors) is stored with it. A golden
image, when given, is run through the model here and shipped in the manifest: each device runs
it before switching to the model (the device side is :mod:`edge_agent.rollout`). Refusals are
:class:`~cloud.errors.RegistryError` subclasses, one per reason the API answers differently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import open_blobs
from edgecascade.cloud.calibration import Fit, Pair, fit_temperature
from edgecascade.cloud.db.models import ModelVersion, Result, Verdict
from edgecascade.cloud.errors import (
    ModelExists,
    ModelNotFound,
    ModelRejected,
    ModelTooLarge,
    SigningKeyUnavailable,
    TooFewVerdicts,
)
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.errors import ContractError, ModelError
from edgecascade.shared.manifest import (
    ManifestError,
    build_manifest,
    golden_case,
    load_private_key,
    sign_manifest,
)
from edgecascade.shared.model_messages import GoldenCase, ModelManifest
from edgecascade.shared.runtime.card import Lineage, ModelCard, Preprocess, TrainableSource
from edgecascade.shared.runtime.runtime import ModelRuntime

logger = logging.getLogger(__name__)

# What the trainer can rebuild: the keys of modelzoo/architectures.py::ARCHITECTURES, kept equal
# by a test, so the cloud checks a trainable source without importing torch or the model zoo.
TRAINABLE_ARCHITECTURES = ("fashion-cloud-cnn", "fashion-edge-cnn")


@dataclass(frozen=True)
class Upload:
    """A model as uploaded: the file, what to call it, its labels, how to feed it."""

    content: bytes
    name: str
    version: str
    labels: list[str]
    preprocess: dict[str, Any] | None = None
    golden_image: bytes | None = None  # PNG or JPEG; its top-1 goes into the manifest
    trainable: TrainableSource | None = None  # what it can be fine-tuned from (with weights)
    weights: bytes | None = None  # the trainable source's state_dict, kept beside the model
    lineage: Lineage | None = None  # parent and data of a fine-tuned model


def signing_key(settings: CloudSettings) -> Ed25519PrivateKey:
    path = settings.signing_key_path
    if not path.exists():
        raise SigningKeyUnavailable(
            f"no manifest signing key at {path}: run `edgecascade cloud keys generate`"
        )
    try:
        return load_private_key(path)
    except ManifestError as exc:
        raise SigningKeyUnavailable(str(exc)) from exc


def register(
    session: Session, settings: CloudSettings, upload: Upload, created_by: str
) -> ModelVersion:
    """Validate, store and sign ``upload``; the new registry row."""
    _check_size(upload, settings)
    key = signing_key(settings)
    card, runtime = _load(upload)
    _check_new(session, upload, runtime.sha256)
    golden = _golden_cases(upload, runtime)
    manifest = sign_manifest(_manifest(upload, settings, card, runtime, golden), key)
    models = ModelStore(settings)
    if upload.weights is not None:
        models.put_weights(runtime.sha256, upload.weights)
    models.put(runtime.sha256, upload.content)
    row = ModelVersion(
        name=upload.name,
        version=upload.version,
        sha256=runtime.sha256,
        size_bytes=len(upload.content),
        num_classes=runtime.num_classes,
        input_spec=_jsonable(asdict(runtime.input_spec)),
        output_spec=_jsonable(asdict(runtime.output_spec)),
        manifest=manifest.model_dump(mode="json"),
        created_at=time.time(),
        created_by=created_by,
        card=card.model_dump(mode="json", exclude_none=True),
    )
    session.add(row)
    session.commit()
    return row


def weights_file(name: str) -> str:
    """What the state_dict of the model ``name`` is called beside it when written out."""
    return f"{name}.pt"


def _check_size(upload: Upload, settings: CloudSettings) -> None:
    limit = int(settings.registry.max_model_mb * 1024 * 1024)
    files = {"model file": upload.content, "weights file": upload.weights or b""}
    for what, content in files.items():
        if len(content) > limit:
            raise ModelTooLarge(
                f"{what} is {len(content)} bytes; the registry takes at most {limit} "
                f"(registry.max_model_mb = {settings.registry.max_model_mb:g})"
            )


def _load(upload: Upload) -> tuple[ModelCard, ModelRuntime]:
    """The upload's card and the model loaded by the interpreter: what it is, checked by use.
    Without ``preprocess`` the preprocessing (and, without labels, the labels) are read from the
    model as the runtime reads a model without a card: TFLite metadata, else input
    quantization, else defaults."""
    source = f"upload {upload.name} {upload.version}"
    try:
        _check_weights(upload)
        described = None
        if upload.preprocess is None:
            described = ModelRuntime.from_bytes(upload.content, source, None, num_threads=1)
        card = ModelCard(
            name=upload.name,
            version=upload.version,
            labels=upload.labels or (list(described.card.labels) if described else []),
            preprocess=described.card.preprocess
            if described
            else Preprocess.model_validate(upload.preprocess),
            source=described.card.source if described else "",
            license=described.card.license if described else "",
            trainable=upload.trainable,
            lineage=upload.lineage,
        )
        runtime = ModelRuntime.from_bytes(upload.content, source, card, num_threads=1)
    except ModelError as exc:
        raise ModelRejected(str(exc)) from exc
    except ValueError as exc:  # the card: a bad name, version or preprocess value
        raise ModelRejected(f"invalid model card: {exc}") from exc
    if not card.labels:
        raise ModelRejected(
            f"no labels given and the model carries none; it has {runtime.num_classes} outputs"
        )
    if described is not None:
        logger.info("%s: %s", source, described.description.summary())
    return card, runtime


def _check_weights(upload: Upload) -> None:
    """A trainable source comes with its weights, of an architecture the trainer knows, and
    they are the ones it names."""
    trainable, weights = upload.trainable, upload.weights
    if trainable is None and weights is not None:
        raise ModelRejected(
            "weights without a trainable source: the architecture and weights_sha256 are missing"
        )
    if trainable is None:
        return
    if weights is None:
        raise ModelRejected("a trainable source without its weights: the weights file is missing")
    if trainable.architecture not in TRAINABLE_ARCHITECTURES:
        raise ModelRejected(
            f"unknown architecture {trainable.architecture!r}; the trainer knows "
            f"{', '.join(TRAINABLE_ARCHITECTURES)}"
        )
    digest = hashlib.sha256(weights).hexdigest()
    if digest != trainable.weights_sha256:
        raise ModelRejected(
            f"the weights' sha256 is {digest}, not the weights_sha256 the trainable source "
            f"names ({trainable.weights_sha256})"
        )


def _check_new(session: Session, upload: Upload, sha256: str) -> None:
    """Neither the name and version nor the bytes are registered yet."""
    duplicate = session.scalar(
        select(ModelVersion).where(
            (ModelVersion.sha256 == sha256)
            | ((ModelVersion.name == upload.name) & (ModelVersion.version == upload.version))
        )
    )
    if duplicate is not None:
        same = "this file" if duplicate.sha256 == sha256 else "another file"
        raise ModelExists(f"{same} is registered as {duplicate.name} {duplicate.version} already")


def _golden_cases(upload: Upload, runtime: ModelRuntime) -> list[GoldenCase]:
    """The golden image (if any) as PNG with the top-1 the model gives it here."""
    if upload.golden_image is None:
        return []
    image = cv2.imdecode(np.frombuffer(upload.golden_image, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ModelRejected("the golden image is not a PNG or JPEG that decodes")
    index, _, score = runtime.classify(np.asarray(image, np.uint8)).top(1)[0]
    png_ok, png = cv2.imencode(".png", image)
    if not png_ok:
        raise ModelRejected("the golden image cannot be re-encoded as PNG")
    return [golden_case(png.tobytes(), index, score)]


def _manifest(
    upload: Upload,
    settings: CloudSettings,
    card: ModelCard,
    runtime: ModelRuntime,
    golden: list[GoldenCase],
) -> ModelManifest:
    """The unsigned manifest of the upload."""
    try:
        return build_manifest(
            upload.content,
            name=upload.name,
            version=upload.version,
            labels=list(runtime.labels),
            card=card.model_dump(mode="json", include={"preprocess", "output"}),
            golden=golden,
            chunk_size=settings.registry.chunk_kib * 1024,
        )
    except ValueError as exc:  # pydantic: e.g. a name that is not a valid id
        raise ModelRejected(f"invalid manifest: {exc}") from exc


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """As it will read back from the JSON column (tuples become lists)."""
    out: dict[str, Any] = json.loads(json.dumps(value))
    return out


def manifest_of(row: ModelVersion) -> ModelManifest:
    try:
        return ModelManifest.model_validate(row.manifest)
    except ValueError as exc:  # pragma: no cover - only a hand-edited row gets here
        raise ContractError(f"stored manifest of {row.name} {row.version}: {exc}") from exc


class ModelStore:
    """Registered model files by sha256 (``<sha256>.tflite``, its weights ``<sha256>.pt``) in the
    blob store's ``models`` area."""

    def __init__(self, settings: CloudSettings) -> None:
        self._blobs = open_blobs(settings, "models")

    def put(self, sha256: str, content: bytes) -> None:
        self._blobs.put(f"{sha256}.tflite", content)

    def get(self, sha256: str) -> bytes:
        return self._blobs.get(f"{sha256}.tflite")

    def put_weights(self, sha256: str, content: bytes) -> None:
        """The trainable source's state_dict of the model ``sha256``, ``<sha256>.pt``."""
        self._blobs.put(f"{sha256}.pt", content)

    def weights(self, sha256: str) -> bytes:
        """The state_dict; :class:`~cloud.blobs.BlobNotFound` when the model has none."""
        return self._blobs.get(f"{sha256}.pt")


def card_of(row: ModelVersion) -> ModelCard:
    """The registered model's card: as uploaded when kept, else rebuilt from its manifest."""
    if row.card is not None:
        return ModelCard.model_validate(row.card)
    manifest = manifest_of(row)
    return ModelCard.model_validate(
        {**manifest.card, "name": row.name, "version": row.version, "labels": manifest.labels}
    )


def calibrate(
    session: Session, settings: CloudSettings, name: str, version: str, min_samples: int
) -> tuple[ModelVersion, Fit]:
    """Fit the model's temperature on its stored escalations and verdicts; re-sign its manifest
    with it, so the next offer of this version ships it."""
    row = session.get(ModelVersion, (name, version))
    if row is None:
        raise ModelNotFound(f"no model {name} {version}")
    manifest = manifest_of(row)
    index_of = {label: i for i, label in enumerate(manifest.labels)}
    stored = session.execute(
        select(Result.top, Verdict.label)
        .join(Verdict, Verdict.result_id == Result.msg_id)
        .where(Result.model_name == name, Result.model_version == version)
    ).all()
    pairs = [
        Pair(top=[(int(p["index"]), float(p["score"])) for p in top], truth=index_of[label])
        for top, label in stored
        if label in index_of
    ]
    if len(pairs) < min_samples:
        raise TooFewVerdicts(
            f"{name} {version} has {len(pairs)} escalations with a cloud verdict; "
            f"calibration needs {min_samples}"
        )
    fit = fit_temperature(pairs, len(manifest.labels))
    updated = manifest.model_copy(
        update={"temperature": round(manifest.temperature * fit.temperature, 6), "signature": ""}
    )
    row.manifest = sign_manifest(updated, signing_key(settings)).model_dump(mode="json")
    session.commit()
    return row, fit
