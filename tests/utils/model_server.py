"""Plays the site's model cache for tests: answers chunk requests from a model file."""

from __future__ import annotations

import math
import threading

from shared.codec import decode, encode
from shared.config import MqttSettings
from shared.messages import ModelChunkHeader, ModelChunkRequestMessage, ModelManifest
from shared.mqtt import MqttLink, Outgoing, Received
from shared.topics import Kind, Topic, topic, topic_filter


class ModelServer:
    """Serves ``content`` in ``manifest.chunk_size`` chunks; can withhold chunks or go silent."""

    def __init__(self, settings: MqttSettings, manifest: ModelManifest, content: bytes) -> None:
        self.manifest = manifest
        self.content = content
        self.requests: list[list[int]] = []
        self.withhold: set[int] = set()  # never sent while in here
        self.silent = threading.Event()  # answer nothing at all
        self.link = MqttLink(settings, "model-server", on_message=self._serve, persistent=False)
        self.link.subscribe(topic_filter(Kind.MODEL, sub="request"))

    def __enter__(self) -> ModelServer:
        self.link.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()

    def _serve(self, message: Received) -> None:
        parsed = Topic.parse(message.topic)
        request = decode(parsed, message.payload).message
        assert isinstance(request, ModelChunkRequestMessage)
        self.requests.append(list(request.indexes))
        if self.silent.is_set() or request.sha256 != self.manifest.sha256:
            return
        size = self.manifest.chunk_size
        total = math.ceil(len(self.content) / size)
        wire = topic(parsed.site, parsed.device, Kind.MODEL, "chunk")
        for index in request.indexes:
            if index in self.withhold:
                continue
            header = ModelChunkHeader(sha256=self.manifest.sha256, index=index, total=total)
            body = self.content[index * size : (index + 1) * size]
            self.link.publish(Outgoing(wire, encode(header, body)))
