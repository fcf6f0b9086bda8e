"""The model registry through the served API: real models uploaded, validated by loading, signed;
corrupt, oversized, mislabelled, duplicate and unauthorised uploads refused with the reason; a
trainable source uploaded with its weights, or refused with what is wrong with it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edgecascade.cloud.app import create_app
from edgecascade.cloud.db.models import ModelVersion
from edgecascade.cloud.registry import TRAINABLE_ARCHITECTURES, ModelStore, card_of
from edgecascade.cloud.settings import CloudSettings
from edgecascade.demo_models import register_model
from edgecascade.modelzoo.architectures import ARCHITECTURES
from edgecascade.shared.manifest import generate_keys, verify_manifest
from edgecascade.shared.model_messages import ModelManifest
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.cloud.conftest import ApiClient, serving
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EDGE_MODEL_FP32, EVAL_SAMPLE

CARD = load_card_for(CLOUD_MODEL)
LABELS = "\n".join(CARD.labels) + "\n"
PREPROCESS = json.dumps(CARD.preprocess.model_dump(mode="json"))
GOLDEN = sorted(EVAL_SAMPLE.rglob("*.png"))[0]
EDGE_CARD = load_card_for(EDGE_MODEL)
assert EDGE_CARD.trainable is not None
WEIGHTS = (EDGE_MODEL.parent / EDGE_CARD.trainable.weights).read_bytes()
SOURCE = {"architecture": "fashion-edge-cnn", "weights_sha256": hashlib.sha256(WEIGHTS).hexdigest()}


def upload(
    client: ApiClient,
    headers: dict[str, str],
    content: bytes,
    version: str = "2.0.0",
    labels: str = LABELS,
    **extra: Any,
) -> httpx.Response:
    files: dict[str, Any] = {
        "file": ("model.tflite", content, "application/octet-stream"),
        "labels": ("labels.txt", labels.encode(), "text/plain"),
        **extra,
    }
    data = {"name": "fashion-cloud", "version": version, "preprocess": PREPROCESS}
    return client.post("/api/models", data=data, files=files, headers=headers)


def test_a_real_model_is_registered_signed_and_served(client: ApiClient) -> None:
    admin = client.as_role("admin")
    content = CLOUD_MODEL.read_bytes()
    # No signing key yet: refused, and the answer says how to make one.
    no_key = upload(client, admin, content)
    assert no_key.status_code == 503 and "edgecascade cloud keys generate" in no_key.text
    generate_keys(client.services.settings.signing_key_path.parent)

    golden = ("golden.png", GOLDEN.read_bytes(), "image/png")
    created = upload(client, admin, content, golden=golden)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["num_classes"] == 10 and body["created_by"].startswith("test-admin")
    assert body["input_spec"]["tensor"]["shape"] == [1, 28, 28, 1]
    assert body["output_spec"]["shape"] == [1, 10]
    assert body["trainable"] is None  # no trainable source uploaded: the trainer cannot use it

    # The manifest verifies with the public key the API hands out, and carries the golden
    # image with the model's own answer on it.
    pem = client.get("/api/models/signing-key")
    assert pem.status_code == 200
    manifest = ModelManifest.model_validate(body["manifest"])
    public = load_pem_public_key(pem.content)
    assert isinstance(public, Ed25519PublicKey)
    verify_manifest(manifest, public)
    assert manifest.labels == CARD.labels and len(manifest.golden) == 1
    image = cv2.imread(str(GOLDEN), cv2.IMREAD_UNCHANGED)
    index, _, score = ModelRuntime.load(CLOUD_MODEL).classify(np.asarray(image, np.uint8)).top(1)[0]
    assert (manifest.golden[0].top1_index, manifest.golden[0].top1_score) == (index, score)

    # Listed for viewers; the file comes back byte for byte.
    listed = client.get("/api/models").json()["items"]
    assert [(m["name"], m["version"]) for m in listed] == [("fashion-cloud", "2.0.0")]
    assert client.get("/api/models/fashion-cloud/2.0.0/file").content == content
    assert client.get("/api/models/fashion-cloud/9.9.9").status_code == 404

    # The same name and version, or the same bytes under another version: refused.
    again = upload(client, admin, content)
    assert again.status_code == 409 and "registered as fashion-cloud 2.0.0" in again.text
    same_bytes = upload(client, admin, content, version="2.0.1")
    assert same_bytes.status_code == 409 and "this file is registered" in same_bytes.text


def test_bad_uploads_are_refused_with_the_reason(client: ApiClient) -> None:
    admin = client.as_role("admin")
    generate_keys(client.services.settings.signing_key_path.parent)
    content = CLOUD_MODEL.read_bytes()
    cases = {
        "not a model": (b"\x00" * 1000, LABELS, "not a TFLite model"),
        "truncated": (content[: len(content) // 3], LABELS, "cannot load"),
        "labels do not match": (content, "a\nb\nc\n", "has 10 outputs but its card lists 3"),
        "no labels": (content, "\n", "no labels given"),
    }
    for case, (data, labels, reason) in cases.items():
        response = upload(client, admin, data, labels=labels)
        assert response.status_code == 422, (case, response.text)
        assert reason in response.json()["detail"], (case, response.text)
    not_an_image = upload(
        client, admin, content, golden=("g.png", b"\x89PNG nonsense", "image/png")
    )
    assert not_an_image.status_code == 422 and "golden image" in not_an_image.text
    # Authentication first: nobody and viewers cannot upload at all.
    assert upload(client, {"Authorization": ""}, content).status_code == 401
    assert upload(client, client.as_role("operator"), content).status_code == 403
    assert client.get("/api/models").json()["items"] == []  # nothing half-registered
    assert not any(client.services.settings.model_dir.glob("*.tflite"))


def trainable_parts(source: dict[str, str] | None, weights: bytes | None) -> dict[str, Any]:
    """The optional ``trainable`` form field and ``weights`` file of an upload."""
    parts: dict[str, Any] = {}
    if source is not None:
        parts["trainable"] = (None, json.dumps(source))
    if weights is not None:
        parts["weights"] = ("fashion_edge.pt", weights, "application/octet-stream")
    return parts


def test_a_model_uploaded_with_its_weights_is_trainable(client: ApiClient) -> None:
    admin = client.as_role("admin")
    generate_keys(client.services.settings.signing_key_path.parent)
    content = EDGE_MODEL.read_bytes()
    wrong = {**SOURCE, "weights_sha256": "0" * 64}
    cases: dict[str, tuple[dict[str, str] | None, bytes | None, str]] = {
        "weights alone": (None, WEIGHTS, "architecture and weights_sha256 are missing"),
        "no weights": (SOURCE, None, "the weights file is missing"),
        "other weights": (wrong, WEIGHTS, "not the weights_sha256 the trainable source names"),
        "unknown architecture": (
            {**SOURCE, "architecture": "resnet-50"},
            WEIGHTS,
            "unknown architecture 'resnet-50'; the trainer knows fashion-cloud-cnn, fashion-edge",
        ),
        "not a source": ({"architecture": "fashion-edge-cnn"}, WEIGHTS, "unreadable field"),
    }
    for case, (source, weights, reason) in cases.items():
        response = upload(client, admin, content, **trainable_parts(source, weights))
        assert response.status_code == 422, (case, response.text)
        assert reason in response.json()["detail"], (case, response.text)
    assert client.get("/api/models").json()["items"] == []  # nothing half-registered
    assert not any(client.services.settings.model_dir.glob("*"))

    created = upload(client, admin, content, **trainable_parts(SOURCE, WEIGHTS))
    assert created.status_code == 201, created.text
    assert created.json()["trainable"] == SOURCE
    detail = client.get("/api/models/fashion-cloud/2.0.0").json()
    assert detail["trainable"] == SOURCE  # the architecture, for whoever picks a parent
    # The registry keeps the weights by the model's sha256, as the trainer reads them.
    with client.services.sessions() as session:
        row = session.get(ModelVersion, ("fashion-cloud", "2.0.0"))
        assert row is not None
        card = card_of(row)
    assert card.trainable is not None and card.trainable.weights == "fashion-cloud.pt"
    assert ModelStore(client.services.settings).weights(row.sha256) == WEIGHTS


def test_the_demo_registers_the_edge_model_with_its_trainable_source(client: ApiClient) -> None:
    generate_keys(client.services.settings.signing_key_path.parent)
    api = str(client.base_url).rstrip("/")
    registered = register_model(api, client.token("admin"), EDGE_MODEL, None)
    assert registered == f"{EDGE_CARD.name} {EDGE_CARD.version}"
    detail = client.get(f"/api/models/{EDGE_CARD.name}/{EDGE_CARD.version}").json()
    assert detail["trainable"] == SOURCE
    assert register_model(api, client.token("admin"), EDGE_MODEL, None) is None  # registered


def test_the_cloud_knows_the_architectures_the_trainer_can_rebuild() -> None:
    assert sorted(TRAINABLE_ARCHITECTURES) == sorted(ARCHITECTURES)


def test_an_oversized_upload_is_refused_before_it_is_loaded(
    cloud_settings: CloudSettings, tmp_path: Path
) -> None:
    settings = CloudSettings.model_validate(
        {**cloud_settings.model_dump(), "registry": {"max_model_mb": 0.1}}
    )
    generate_keys(settings.signing_key_path.parent)
    app = create_app(settings, start_ingest=False)
    with serving(app) as base, ApiClient(base_url=base, timeout=30) as client:
        client.services = app.state.services
        admin = client.as_role("admin")
        small = upload(client, admin, EDGE_MODEL.read_bytes(), labels=LABELS)  # 15 KB: fits
        assert small.status_code == 201, small.text
        big = upload(client, admin, CLOUD_MODEL.read_bytes(), version="3.0.0")  # 573 KB
        assert big.status_code == 413
        assert "the registry takes at most 104857" in big.json()["detail"]
        heavy = upload(
            client,
            admin,
            EDGE_MODEL_FP32.read_bytes(),
            version="4.0.0",
            **trainable_parts(SOURCE, WEIGHTS + b"\0" * 110_000),
        )
        assert heavy.status_code == 413 and "weights file is 104858 bytes" in heavy.text


def test_calibration_fits_the_temperature_from_verdicts_and_re_signs_the_manifest(
    client: ApiClient,
) -> None:
    from edgecascade.cloud.db.models import Verdict
    from edgecascade.cloud.store import StoreWriter
    from edgecascade.shared.messages import ModelRef, Prediction
    from edgecascade.shared.topics import Kind
    from tests.cloud.conftest import inbound
    from tests.cloud.test_calibration import pairs_with
    from tests.utils.factories import make_result

    admin = client.as_role("admin")
    _, public_path = generate_keys(client.services.settings.signing_key_path.parent)
    assert upload(client, admin, CLOUD_MODEL.read_bytes()).status_code == 201
    model = ModelRef(name="fashion-cloud", version="2.0.0", sha256="0" * 64)
    services = client.services
    results, verdicts = [], []
    for pair in pairs_with(2.0, n=400):  # an edge model twice as confident as it should be
        top = [Prediction(index=i, label=CARD.labels[i], score=p) for i, p in pair.top]
        result = make_result("s1", "cam-1", top=top, model=model, escalated=True)
        results.append(inbound("s1", "cam-1", Kind.RESULT, result))
        verdicts.append(
            Verdict(
                escalation_id=make_result().msg_id,
                msg_id=make_result().msg_id,
                result_id=result.msg_id,
                site_id="s1",
                device_id="cam-1",
                created_at=1.0,
                worker_id="w",
                model_name="cloud",
                model_version="1",
                model_sha256="0" * 64,
                label=CARD.labels[pair.truth],
                label_index=pair.truth,
                score=0.9,
                top=[],
                edge_model_name="fashion-cloud",
                edge_model_version="2.0.0",
                edge_label=top[0].label,
                edge_score=top[0].score,
                agrees=top[0].index == pair.truth,
                inference_ms=1.0,
            )
        )
    StoreWriter(services.engine, services.blobs).write(results)
    with services.sessions() as session:
        session.add_all(verdicts)
        session.commit()

    url = "/api/models/fashion-cloud/2.0.0/calibrate"
    too_few = client.post(url, params={"min_samples": 1000}, headers=admin)
    assert too_few.status_code == 422 and "has 400 escalations with a cloud verdict" in too_few.text
    assert client.post(url).status_code == 403  # viewers cannot
    fitted = client.post(url, headers=admin)
    assert fitted.status_code == 200, fitted.text
    body = fitted.json()
    assert body["fitted"] == pytest.approx(2.0, rel=0.25) and body["samples"] == 400
    assert body["nll_after"] < body["nll_before"]
    # The manifest devices get next carries it, signed again.
    manifest = ModelManifest.model_validate(
        client.get("/api/models/fashion-cloud/2.0.0").json()["manifest"]
    )
    assert manifest.temperature == pytest.approx(body["fitted"], rel=1e-5)
    public = load_pem_public_key(public_path.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    verify_manifest(manifest, public)
