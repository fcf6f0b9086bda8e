"""A model rollout to the browser camera page, as to the Python agent: a signed offer (checked
with the key the cloud serves at ``/camera/signing-key.pem``), chunks requested and verified, the
golden image classified, the new model running and named in the retained state; a tampered
offer is refused with the reason."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlencode

import cv2
import numpy as np
from playwright.sync_api import Browser

from edgecascade.cloud.app import create_app
from edgecascade.cloud.camera_settings import CameraSection
from edgecascade.cloud.settings import CloudSettings, RegistrySection
from edgecascade.shared.codec import encode
from edgecascade.shared.manifest import (
    OfferSequence,
    build_manifest,
    generate_keys,
    golden_case,
    load_private_key,
    sign_offer,
)
from edgecascade.shared.messages import ResultMessage
from edgecascade.shared.model_messages import ModelAckMessage, ModelManifest, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, ModelSub, topic
from tests.camera.conftest import TIMEOUT_MS, CameraSite
from tests.camera.test_page import decoded, last_state, send
from tests.cloud.conftest import serving
from tests.utils.camera import DEVICE, MODEL, MODELS, SITE, TESTER
from tests.utils.model_server import ModelServer
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EVAL_SAMPLE


def new_model() -> tuple[ModelManifest, bytes]:
    """The fp32 edge model with 16 bytes appended (a different file, sha256 and version, the
    same network: TFLite ignores what follows the flatbuffer), with a golden image."""
    content = MODEL.read_bytes() + bytes(16)
    card = load_card_for(MODEL)
    png = sorted(EVAL_SAMPLE.rglob("*.png"))[0]
    image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    runtime = ModelRuntime.from_bytes(content, "edge", card)
    index, _, score = runtime.classify(np.asarray(image, np.uint8)).top(1)[0]
    manifest = build_manifest(
        content,
        name=card.name,
        version="1.0.1",
        labels=card.labels,
        card=card.model_dump(mode="json", include={"preprocess", "output"}),
        golden=[golden_case(png.read_bytes(), index, score)],
        chunk_size=16 * 1024,
    )
    return manifest, content


def acks(seen: Collector, rollout: str) -> list[ModelAckMessage]:
    out = []
    for item in decoded(seen, Kind.MODEL, ModelSub.ACK):
        if isinstance(item.message, ModelAckMessage) and item.message.rollout_id == rollout:
            out.append(item.message)
    return out


def test_the_page_installs_a_signed_model_and_refuses_a_tampered_one(
    camera_page: Path, camera_browser: Browser, camera_site: CameraSite, tmp_path: Path
) -> None:
    site = camera_site.site
    private, _ = generate_keys(tmp_path / "keys")
    settings = CloudSettings(
        data_dir=tmp_path / "cloud",
        camera=CameraSection(dir=camera_page, model=MODEL),
        registry=RegistrySection(signing_key=private),
    )
    key, sequence = load_private_key(private), OfferSequence()
    manifest, content = new_model()
    good = sign_offer(manifest, key, sequence.next(), 600)
    tampered = good.model_copy(update={"version": "6.6.6"})  # the signature no longer fits
    query = site.page_query(fps="5", telemetry="1")
    with (
        serving(create_app(settings, start_ingest=False)) as base,
        Collector(site.mqtt(TESTER), f"ec/v1/{SITE}/{DEVICE}/#", client_id=TESTER) as seen,
        ModelServer(site.mqtt(MODELS), good, content),
    ):
        page = camera_browser.new_context(permissions=["camera"]).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/camera/?{urlencode(query)}")
        assert wait_until(lambda: bool(decoded(seen, Kind.RESULT)), timeout=30)
        offer_topic = topic(SITE, DEVICE, Kind.MODEL, ModelSub.OFFER)
        for rollout, manifest_ in (("tampered", tampered), ("good", good)):
            offer = ModelOfferMessage(rollout_id=rollout, manifest=manifest_)
            send(seen, Outgoing(offer_topic, encode(offer)))
        done = {"failed", "applied"}
        assert wait_until(lambda: bool({a.status for a in acks(seen, "good")} & done), timeout=20)
        assert [a.status for a in acks(seen, "good")] == ["downloading", "verified", "applied"]
        refused = acks(seen, "tampered")
        assert [a.status for a in refused] == ["failed"], refused
        assert "bad signature" in refused[0].detail
        digest = hashlib.sha256(content).hexdigest()
        assert wait_until(lambda: getattr(last_state(seen).model, "sha256", "") == digest)
        n = len(decoded(seen, Kind.RESULT))
        assert wait_until(lambda: len(decoded(seen, Kind.RESULT)) > n + 2, timeout=10)
        latest = decoded(seen, Kind.RESULT)[-1].message
        assert isinstance(latest, ResultMessage) and latest.model.sha256 == digest
