"""The cloud's model source: ``model/request`` answered with chunks of registered models.

Whoever fetches a model (a site gateway for its cache, or a device behind a plain bridge) asks on
its own ``<site>/<id>/model/request`` with the artifact's sha256 and the chunk indexes it lacks;
the answer goes to ``<site>/<id>/model/chunk``, one frame-codec message per chunk, read from the
registry's model store. The subscription is shared, so replicas split the requests; requests are
not persisted (a requester that hears nothing asks again), and an unknown sha256 is counted and
not answered.
"""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edgecascade.cloud.db.models import ModelVersion
from edgecascade.cloud.registry import manifest_of
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.chunks import chunk_count, read_chunk
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.errors import ContractError
from edgecascade.shared.model_messages import ModelChunkRequestMessage, ModelManifest
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.topics import Kind, ModelSub, Topic, shared_filter, topic, topic_filter

logger = logging.getLogger(__name__)

SHARE_GROUP = "models"


class ModelDistributor:
    def __init__(self, engine: Engine, settings: CloudSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._manifests: dict[str, ModelManifest] = {}
        self._link = MqttLink(
            settings.mqtt,
            f"{settings.client_id}-models",
            on_message=self._on_request,
            persistent=False,
            max_inflight=1000,
        )
        self.filter = shared_filter(
            SHARE_GROUP, topic_filter(Kind.MODEL, sub=ModelSub.REQUEST, prefix=settings.mqtt.prefix)
        )

    def start(self) -> None:
        self._link.subscribe(self.filter, qos=1)
        self._link.start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._link.wait_connected(timeout)

    def stop(self) -> None:
        self._link.stop()

    def _manifest(self, sha256: str) -> ModelManifest | None:
        manifest = self._manifests.get(sha256)
        if manifest is None:
            with Session(self.engine) as session:
                row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha256))
            if row is not None:
                manifest = self._manifests[sha256] = manifest_of(row)
        return manifest

    def _on_request(self, message: Received) -> None:
        try:
            parsed = Topic.parse(message.topic)
            request = decode(parsed, message.payload).message
            assert isinstance(request, ModelChunkRequestMessage)
        except ContractError as exc:
            self.counts["requests.invalid"] += 1
            logger.warning("model request on %s refused: %s", message.topic, exc)
            return
        manifest = self._manifest(request.sha256)
        if manifest is None:
            self.counts["requests.unknown"] += 1
            logger.warning("%s asked for unknown model %s", message.topic, request.sha256[:16])
            return
        path = self.settings.model_dir / f"{manifest.sha256}.tflite"
        wire = topic(parsed.site, parsed.device, Kind.MODEL, ModelSub.CHUNK, prefix=parsed.prefix)
        total = chunk_count(manifest)
        for index in request.indexes:
            if index >= total:
                self.counts["chunks.out_of_range"] += 1
                continue
            header, body = read_chunk(path, manifest, index)
            self._link.publish(Outgoing(wire, encode(header, body)))
            self.counts["chunks.sent"] += 1
        self.counts["requests.answered"] += 1
