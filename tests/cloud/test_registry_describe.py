"""Registering a model without a card: the registry reads it from the model, as the runtime does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.runtime.card import load_card_for
from tests.cloud.conftest import ApiClient
from tests.utils.paths import EDGE_MODEL, EDGE_MODEL_FP32
from tests.utils.tflite_metadata import metadata_flatbuffer, with_metadata

LABELS = load_card_for(EDGE_MODEL).labels


def fp32_with_labels(labels: list[str]) -> bytes:
    meta = metadata_flatbuffer(
        name="fashion", label_file="labels.txt", mean=[0.0], std=[1.0], color="gray"
    )
    return with_metadata(EDGE_MODEL_FP32.read_bytes(), meta, {"labels.txt": "\n".join(labels)})


def post(client: ApiClient, content: bytes, version: str, **files: Any) -> httpx.Response:
    parts: dict[str, Any] = {"file": ("model.tflite", content, "application/octet-stream")}
    parts.update(files)
    data = {"name": "byom", "version": version}
    return client.post("/api/models", data=data, files=parts, headers=client.as_role("admin"))


@pytest.fixture
def admin_client(client: ApiClient) -> ApiClient:
    generate_keys(client.services.settings.signing_key_path.parent)
    return client


def test_labels_and_normalisation_come_from_the_models_metadata(admin_client: ApiClient) -> None:
    created = post(admin_client, fp32_with_labels(LABELS), "1")  # no labels, no preprocess
    assert created.status_code == 201, created.text
    manifest = created.json()["manifest"]
    assert manifest["labels"] == LABELS
    assert manifest["card"]["preprocess"]["mean"] == 0.0
    assert manifest["card"]["preprocess"]["std"] == 1.0
    assert manifest["card"]["preprocess"]["color"] == "gray"


def test_an_int8_model_without_preprocess_gets_its_input_quantization(
    admin_client: ApiClient,
) -> None:
    labels = ("labels.txt", "\n".join(LABELS).encode(), "text/plain")
    created = post(admin_client, EDGE_MODEL.read_bytes(), "2", labels=labels)
    assert created.status_code == 201, created.text
    preprocess = created.json()["manifest"]["card"]["preprocess"]
    # scale 0.9999, zero point -128: pixels 0..255 onto the int8 levels, mean 0, std 1/scale
    assert preprocess["mean"] == 0.0
    assert preprocess["std"] == pytest.approx(1.0001, abs=1e-4)


def test_metadata_that_contradicts_the_model_is_refused_and_nothing_kept(
    admin_client: ApiClient,
) -> None:
    refused = post(admin_client, fp32_with_labels(LABELS[:5]), "3")
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "'labels.txt' lists 5 labels but the model has 10 outputs" in detail
    no_labels = post(admin_client, EDGE_MODEL.read_bytes(), "4")
    assert no_labels.status_code == 422
    assert "no labels given and the model carries none" in no_labels.json()["detail"]
    assert admin_client.get("/api/models").json()["items"] == []
    assert not any(admin_client.services.settings.model_dir.glob("*.tflite"))
