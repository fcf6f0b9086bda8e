"""``/api/models``: the model registry. Upload (admin), list, details with the signed manifest,
the file itself, and the public key devices verify manifests with."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from edgecascade.cloud.api.deps import ID, TEXT, Admin, SessionDep, SettingsDep, require
from edgecascade.cloud.api.schemas import (
    CalibrationOut,
    ModelDetail,
    ModelList,
    ModelOut,
    TrainableFields,
)
from edgecascade.cloud.db.models import ModelVersion
from edgecascade.cloud.errors import ModelRejected
from edgecascade.cloud.registry import (
    ModelStore,
    Upload,
    calibrate,
    register,
    signing_key,
    weights_file,
)
from edgecascade.shared.manifest import public_pem
from edgecascade.shared.runtime.card import TrainableSource

router = APIRouter(prefix="/api", tags=["models"])
ModelName = Annotated[str, Path(pattern=ID, description="The model's name.")]
ModelVersionText = Annotated[str, Path(pattern=TEXT, max_length=64, description="Its version.")]
viewer = [Depends(require("viewer"))]


@router.post("/models", status_code=status.HTTP_201_CREATED)
async def upload_model(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The .tflite model.")],
    name: Annotated[str, Form(pattern=ID, description="Model name, e.g. fashion-edge.")],
    version: Annotated[str, Form(pattern=TEXT, max_length=64, description="Version, e.g. 1.1.0.")],
    labels: Annotated[
        UploadFile | None,
        File(
            description="Class names, one per line, by output; may be left out when the "
            "model's TFLite metadata carries a label file."
        ),
    ] = None,
    preprocess: Annotated[
        str | None,
        Form(
            description='JSON, e.g. {"color": "gray", "mean": 0, "std": 255} or per channel '
            '{"mean": [123.7, 116.3, 103.5], "std": [58.4, 57.1, 57.4]}; left out, it is read '
            "from the model (TFLite metadata, else the int8/uint8 input's quantization, else "
            "defaults)."
        ),
    ] = None,
    golden: Annotated[
        UploadFile | None, File(description="An image the device checks the model on.")
    ] = None,
    trainable: Annotated[
        str | None,
        Form(
            description='JSON, what it can be fine-tuned from, e.g. {"architecture": '
            '"fashion-edge-cnn", "weights_sha256": "<hex>"}; needs `weights`.'
        ),
    ] = None,
    weights: Annotated[
        UploadFile | None, File(description="The trainable source's torch state_dict (.pt).")
    ] = None,
) -> ModelDetail:
    limit = int(settings.registry.max_model_mb * 1024 * 1024)
    content = await file.read(limit + 1)  # one byte more tells "too large" without reading all
    try:
        label_bytes = await labels.read(16 * 1024 * 1024) if labels is not None else b""
        label_text = label_bytes.decode("utf-8")
        options = json.loads(preprocess) if preprocess else None
        source = TrainableFields.model_validate_json(trainable) if trainable else None
    except ValueError as exc:  # not UTF-8, not JSON, not a trainable source
        raise ModelRejected(f"unreadable field: {exc}") from None
    upload = Upload(
        content=content,
        name=name,
        version=version,
        labels=[line.strip() for line in label_text.splitlines() if line.strip()],
        preprocess=options,
        golden_image=await golden.read(8 * 1024 * 1024) if golden is not None else None,
        trainable=None
        if source is None
        else TrainableSource(**source.model_dump(), weights=weights_file(name)),
        weights=await weights.read(limit + 1) if weights is not None else None,
    )
    row = await run_in_threadpool(register, session, settings, upload, principal.name)
    return ModelDetail.model_validate(row)


@router.get("/models", dependencies=viewer)
def list_models(session: SessionDep) -> ModelList:
    rows = session.scalars(
        select(ModelVersion).order_by(ModelVersion.name, ModelVersion.created_at)
    )
    return ModelList(items=[ModelOut.model_validate(row) for row in rows])


@router.get("/models/signing-key", response_class=Response, dependencies=viewer)
def public_key(settings: SettingsDep) -> Response:
    """The PEM public key for devices' and gateways' ``model_public_key``."""
    return Response(
        public_pem(signing_key(settings).public_key()), media_type="application/x-pem-file"
    )


@router.get("/models/{name}/{version}", dependencies=viewer)
def get_model(name: ModelName, version: ModelVersionText, session: SessionDep) -> ModelDetail:
    return ModelDetail.model_validate(_row(session, name, version))


@router.get(
    "/models/{name}/{version}/file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    dependencies=viewer,
)
def get_model_file(
    name: ModelName, version: ModelVersionText, session: SessionDep, settings: SettingsDep
) -> Response:
    row = _row(session, name, version)
    return Response(ModelStore(settings).get(row.sha256), media_type="application/octet-stream")


@router.post("/models/{name}/{version}/calibrate")
def calibrate_model(
    name: ModelName,
    version: ModelVersionText,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    min_samples: Annotated[int, Query(ge=1, description="Verdicts needed to fit.")] = 100,
) -> CalibrationOut:
    """Fit the model's temperature on the verdicts its escalations got; the next offer of the
    version ships it (the manifest is re-signed)."""
    row, fit = calibrate(session, settings, name, version, min_samples)
    return CalibrationOut(
        temperature=float(row.manifest["temperature"]),
        fitted=fit.temperature,
        samples=fit.samples,
        nll_before=fit.nll_before,
        nll_after=fit.nll_after,
        manifest=row.manifest,
    )


def _row(session: SessionDep, name: str, version: str) -> ModelVersion:
    row = session.get(ModelVersion, (name, version))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {name} {version}")
    return row
