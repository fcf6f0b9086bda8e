"""``/camera/``: the built page and the model the cloud serves it with, or a 404 that says how to
configure it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from edgecascade.cloud.app import create_app
from edgecascade.cloud.camera_settings import CameraSection
from edgecascade.cloud.settings import CloudSettings, RegistrySection
from edgecascade.shared.manifest import generate_keys
from tests.cloud.conftest import serving
from tests.utils.paths import EDGE_MODEL_FP32


@contextmanager
def camera_client(tmp_path: Path, camera: CameraSection) -> Iterator[httpx.Client]:
    """The cloud app served for real, with ``camera``."""
    settings = CloudSettings(data_dir=tmp_path / "cloud", camera=camera)
    app = create_app(settings, start_ingest=False)
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "page"
    (page / "wasm").mkdir(parents=True)
    (page / "index.html").write_text("<title>EdgeCascade camera</title>")
    (page / "wasm" / "x.wasm").write_bytes(b"\0asm")
    return page


def test_an_unbuilt_page_answers_404_saying_how_to_build_it(tmp_path: Path) -> None:
    with camera_client(tmp_path, CameraSection()) as client:
        check_unbuilt(client)


def check_unbuilt(client: httpx.Client) -> None:
    for path in ("/camera/", "/camera/camera.js", "/camera/model.tflite"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert (
            "camera" in response.json()["detail"]
            and "EC_CLOUD_CAMERA__" in response.json()["detail"]
        )


def test_the_page_and_its_model_are_served(tmp_path: Path) -> None:
    camera = CameraSection(dir=_page(tmp_path), model=EDGE_MODEL_FP32)
    with camera_client(tmp_path, camera) as client:
        check_served(client)


def check_served(client: httpx.Client) -> None:
    assert "EdgeCascade camera" in client.get("/camera/").text
    assert client.get("/camera", follow_redirects=False).headers["location"] == "/camera/"
    assert client.get("/camera/wasm/x.wasm").content == b"\0asm"
    assert client.get("/camera/model.tflite").content == EDGE_MODEL_FP32.read_bytes()
    card = client.get("/camera/model.json").json()
    assert card["name"] == "fashion-edge" and len(card["labels"]) == 10
    assert client.get("/camera/missing.js").status_code == 404


def test_a_model_that_is_not_tflite_or_without_the_page_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"camera\.model '/x/model\.onnx' is not a \.tflite"):
        CameraSection(dir=Path("/x"), model=Path("/x/model.onnx"))
    with pytest.raises(ValidationError, match=r"camera\.dir is not"):
        CameraSection(model=EDGE_MODEL_FP32)


def test_the_public_signing_key_is_served_without_a_token(tmp_path: Path) -> None:
    page = _page(tmp_path)
    with camera_client(tmp_path, CameraSection(dir=page)) as client:
        missing = client.get("/camera/signing-key.pem")
    assert missing.status_code == 404 and "keys generate" in missing.json()["detail"]
    private, public = generate_keys(tmp_path / "keys")
    settings = CloudSettings(
        data_dir=tmp_path / "cloud",
        camera=CameraSection(dir=page),
        registry=RegistrySection(signing_key=private),
    )
    with serving(create_app(settings, start_ingest=False)) as base, httpx.Client() as client:
        response = client.get(f"{base}/camera/signing-key.pem")
    assert response.status_code == 200 and response.content == public.read_bytes()
    assert b"PRIVATE" not in response.content
