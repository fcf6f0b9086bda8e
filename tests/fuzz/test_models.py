"""Hostile models: uploads to the registry and offers to a device.

The registry's own tests (``tests/cloud/test_registry.py``) cover a file that is not a model, a
truncated one, labels that do not match the outputs, a golden image that is not one and an
oversized file. Here: the other fields of an upload (labels, preprocess, name and version used as
path parts or topic levels), and on the device, manifests tampered with after signing and offers
that make installing fail in ways the rollout did not foresee. Each is refused with the reason,
nothing is half-registered, and the next good model still goes through.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.cloud.app import create_app
from edgecascade.cloud.settings import CloudSettings
from edgecascade.edge_agent.models import EdgeModel
from edgecascade.edge_agent.rollout import RolloutClient
from edgecascade.edge_agent.slots import ModelSlots
from edgecascade.shared.chunks import read_chunk
from edgecascade.shared.manifest import generate_keys, sign_manifest
from edgecascade.shared.model_messages import (
    ModelAckMessage,
    ModelChunkRequestMessage,
    ModelManifest,
    ModelOfferMessage,
)
from tests.cloud.conftest import ApiClient, serving
from tests.cloud.test_registry import LABELS, PREPROCESS, upload
from tests.utils.model_server import manifest_for
from tests.utils.mqtt import wait_until
from tests.utils.paths import CLOUD_MODEL


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiClient]:
    settings = CloudSettings(data_dir=tmp_path / "cloud")
    generate_keys(settings.signing_key_path.parent)
    app = create_app(settings, start_ingest=False)
    with serving(app) as base, ApiClient(base_url=base, timeout=30) as client:
        client.services = app.state.services
        yield client


def _form(name: str = "fashion-cloud", version: str = "2.0.0", preprocess: str = PREPROCESS) -> Any:
    return {"name": name, "version": version, "preprocess": preprocess}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("labels", LABELS.replace("tshirt_top", "tshirt\x00top"), "labels"),
        ("labels", LABELS.replace("trouser", "T" * 200), "labels"),
        ("preprocess", "{not json", "unreadable field"),
        ("preprocess", "[1, 2]", "invalid model card"),
        ("preprocess", '{"color": "ultraviolet"}', "color"),
        ("name", "../../etc", "name"),
        ("name", "fashion/cloud", "name"),
        ("name", "+", "name"),
        ("name", "x" * 65, "name"),
        ("version", "2.0\x00", "version"),
        ("version", "v" * 65, "version"),
    ],
)
def test_hostile_upload_fields_are_refused_by_name(
    api: ApiClient, field: str, value: str, reason: str
) -> None:
    admin = api.as_role("admin")
    content = CLOUD_MODEL.read_bytes()
    if field == "labels":
        response = upload(api, admin, content, labels=value)
    else:
        files = {
            "file": ("model.tflite", content, "application/octet-stream"),
            "labels": ("labels.txt", LABELS.encode(), "text/plain"),
        }
        response = api.post("/api/models", data=_form(**{field: value}), files=files, headers=admin)
    assert response.status_code == 422, response.text
    assert reason in response.text, response.text
    assert api.get("/api/models", headers=admin).json()["items"] == []
    assert not any(api.services.settings.model_dir.glob("*.tflite"))
    # The registry still takes a good model afterwards.
    assert upload(api, admin, content).status_code == 201


# -- the device ----------------------------------------------------------------------------------
class Device:
    """A :class:`RolloutClient` on real slots, served chunks straight from ``content``."""

    def __init__(self, root: Path, key: Ed25519PrivateKey, content: bytes) -> None:
        root.mkdir(parents=True)
        self.content_path = root / "served.tflite"
        self.content_path.write_bytes(content)
        self.acks: list[ModelAckMessage] = []
        self.switched: list[EdgeModel] = []
        self.manifest: ModelManifest | None = None
        self._lock = threading.Lock()
        self.client = RolloutClient(
            ModelSlots(root / "slots"),
            key.public_key(),
            ack=self._ack,
            request=self._request,
            switch=self.switched.append,
            chunk_timeout=0.5,
            max_rounds=3,
        )
        self.client.start()

    def _ack(self, message: ModelAckMessage) -> None:
        with self._lock:
            self.acks.append(message)

    def _request(self, request: ModelChunkRequestMessage) -> None:
        assert self.manifest is not None
        for index in request.indexes:
            header, body = read_chunk(self.content_path, self.manifest, index)
            self.client.chunk(header, body)

    def offer(self, manifest: ModelManifest, rollout: str) -> ModelAckMessage:
        """Offer ``manifest``; the final ack (failed or applied) of ``rollout``."""
        self.manifest = manifest
        self.client.offer(ModelOfferMessage(rollout_id=rollout, manifest=manifest))

        def final() -> ModelAckMessage | None:
            with self._lock:
                done = [
                    a
                    for a in self.acks
                    if a.rollout_id == rollout and a.status in ("failed", "applied")
                ]
            return done[0] if done else None

        assert wait_until(lambda: final() is not None, timeout=30), self.acks
        ack = final()
        assert ack is not None
        return ack

    def close(self) -> None:
        self.client.stop()


@pytest.fixture
def device(tmp_path: Path) -> Iterator[tuple[Device, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    running = Device(tmp_path / "device", key, CLOUD_MODEL.read_bytes())
    yield running, key
    running.close()


TAMPERING: list[tuple[str, Any]] = [
    ("labels", ["cat"] * 10),  # mislabelled: same count, other names
    ("size_bytes", 10**12),  # huge: a sparse file of a terabyte, if it were believed
    ("sha256", "00" * 32),
    ("temperature", 100.0),
    ("version", "9.9.9"),
    ("chunk_size", 1),
]


def test_manifests_tampered_after_signing_are_refused_and_the_device_goes_on(
    device: tuple[Device, Ed25519PrivateKey],
) -> None:
    running, key = device
    content = CLOUD_MODEL.read_bytes()
    signed = manifest_for(content, key)
    for n, (field, value) in enumerate(TAMPERING):
        tampered = ModelManifest.model_validate({**signed.model_dump(mode="json"), field: value})
        ack = running.offer(tampered, f"tampered-{n}")
        assert ack.status == "failed" and "bad signature" in ack.detail, (field, ack)
    assert not running.switched
    assert not any((running.client.slots.root / "staging").glob("*.part"))  # nothing fetched
    assert running.offer(signed, "genuine").status == "applied"
    assert len(running.switched) == 1


def test_an_unforeseen_failure_is_reported_and_the_next_offer_still_installs(
    device: tuple[Device, Ed25519PrivateKey],
) -> None:
    """A signed manifest whose golden image is not base64 (a registry bug, say) used to raise
    outside the rollout's own errors and end its thread: no later offer was ever looked at."""
    running, key = device
    content = CLOUD_MODEL.read_bytes()
    good = manifest_for(content, key)
    golden = good.golden[0].model_copy(update={"image_png_b64": "QQ"})  # padding missing
    broken = good.model_copy(update={"golden": [golden], "version": "2.0.1", "signature": ""})
    broken = sign_manifest(broken, key)
    with pytest.raises(ValueError):
        base64.b64decode(golden.image_png_b64)
    ack = running.offer(broken, "broken")
    assert ack.status == "failed" and "unexpected error" in ack.detail, ack
    assert running.client.is_alive()
    assert running.offer(good, "good").status == "applied"
    assert json.loads((running.client.slots.root / "active.json").read_text())["active"]
