"""Plays the model source for tests (the cloud, or the site cache): answers chunk requests from a
model file; and signed manifests of the committed cloud model."""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.shared.codec import decode, encode
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.manifest import build_manifest, golden_case, sign_manifest
from edgecascade.shared.model_messages import (
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelManifest,
)
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic, topic_filter
from tests.utils.paths import CLOUD_MODEL, EVAL_SAMPLE


def manifest_for(
    content: bytes, key: Ed25519PrivateKey | None, **golden_override: float
) -> ModelManifest:
    card = load_card_for(CLOUD_MODEL)
    runtime = ModelRuntime.from_bytes(CLOUD_MODEL.read_bytes(), "cloud", card)
    png_path = sorted(EVAL_SAMPLE.rglob("*.png"))[0]
    image = cv2.imread(str(png_path), cv2.IMREAD_UNCHANGED)
    assert image is not None
    index, _, score = runtime.classify(np.asarray(image, np.uint8)).top(1)[0]
    golden = golden_case(
        png_path.read_bytes(),
        int(golden_override.get("index", index)),
        float(golden_override.get("score", score)),
    )
    manifest = build_manifest(
        content,
        name="fashion-cloud",
        version="2.0.0",
        labels=card.labels,
        card=card.model_dump(mode="json", include={"preprocess", "output"}),
        golden=[golden],
        chunk_size=64 * 1024,
    )
    return sign_manifest(manifest, key) if key is not None else manifest


class ModelServer:
    """Serves ``content`` in ``manifest.chunk_size`` chunks; can withhold chunks or go silent."""

    def __init__(self, settings: MqttSettings, manifest: ModelManifest, content: bytes) -> None:
        self.manifest = manifest
        self.content = content
        self.requests: list[list[int]] = []
        self.requested_by: list[str] = []  # the device id of each request
        self.withhold: set[int] = set()  # never sent while in here
        self.silent = threading.Event()  # answer nothing at all
        self.link = MqttLink(settings, "model-server", on_message=self._serve, persistent=False)
        self.link.subscribe(topic_filter(Kind.MODEL, sub=ModelSub.REQUEST))

    def __enter__(self) -> ModelServer:
        self.link.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()

    def _serve(self, message: Received) -> None:
        withhold = set(self.withhold)  # as it is when the request arrives, not as a test moves on
        parsed = Topic.parse(message.topic)
        request = decode(parsed, message.payload).message
        assert isinstance(request, ModelChunkRequestMessage)
        self.requests.append(list(request.indexes))
        self.requested_by.append(parsed.device)
        if self.silent.is_set() or request.sha256 != self.manifest.sha256:
            return
        size = self.manifest.chunk_size
        total = math.ceil(len(self.content) / size)
        wire = topic(parsed.site, parsed.device, Kind.MODEL, ModelSub.CHUNK)
        for index in request.indexes:
            if index in withhold:
                continue
            header = ModelChunkHeader(sha256=self.manifest.sha256, index=index, total=total)
            body = self.content[index * size : (index + 1) * size]
            self.link.publish(Outgoing(wire, encode(header, body)))
