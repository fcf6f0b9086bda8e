"""The suite as the cloud: what the re-inference workers, the rollout controller, the model
distributor and the API would send, published on the cloud broker for the gateway to carry down.

Offers are signed here with the run's own key pair (:mod:`.site`); the models they name are
served by :class:`Distributor` to the gateway's model cache (which serves the device), as
the cloud's distributor does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edgecascade.conformance.recorder import Seen
from edgecascade.conformance.site import SiteIds
from edgecascade.shared.acks import ack_wires
from edgecascade.shared.chunks import chunk_count, read_chunk
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import ContractError
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.manifest import build_manifest
from edgecascade.shared.messages import CommandMessage, Message, ResultBatchMessage
from edgecascade.shared.model_messages import (
    ModelChunkRequestMessage,
    ModelManifest,
    ModelOfferMessage,
)
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic, topic_filter

logger = logging.getLogger(__name__)

CHUNK_SIZE = 16 * 1024  # small chunks: a model of tens of KB takes several requests


def manifest_of(model: Path, chunk_size: int = CHUNK_SIZE) -> ModelManifest:
    """The unsigned manifest of a model file and its card, as the registry builds it."""
    card = load_card_for(model)
    return build_manifest(
        model.read_bytes(),
        name=card.name,
        version=card.version,
        labels=card.labels,
        card=card.model_dump(mode="json", include={"preprocess", "output"}),
        chunk_size=chunk_size,
    )


class Distributor:
    """Answers ``model/request`` on the cloud broker from the model files it was given."""

    def __init__(self, settings: MqttSettings) -> None:
        self._models: dict[str, tuple[Path, ModelManifest]] = {}
        self.served = 0
        self.link = MqttLink(
            settings, "conformance-distributor", on_message=self._serve, persistent=False
        )
        self.link.subscribe(topic_filter(Kind.MODEL, sub=ModelSub.REQUEST, prefix=settings.prefix))

    def add(self, path: Path, manifest: ModelManifest) -> None:
        self._models[manifest.sha256] = (path, manifest)

    def start(self) -> None:
        self.link.connect()

    def stop(self) -> None:
        self.link.stop()

    def _serve(self, message: Received) -> None:
        try:
            parsed = Topic.parse(message.topic)
            request = decode(parsed, message.payload).message
        except ContractError as exc:
            logger.warning("ignoring a bad chunk request on %s: %s", message.topic, exc)
            return
        if not isinstance(request, ModelChunkRequestMessage) or request.sha256 not in self._models:
            return
        path, manifest = self._models[request.sha256]
        wire = topic(parsed.site, parsed.device, Kind.MODEL, ModelSub.CHUNK, prefix=parsed.prefix)
        for index in request.indexes:
            if index < chunk_count(manifest):
                header, body = read_chunk(path, manifest, index)
                self.link.publish(Outgoing(wire, encode(header, body)))
                self.served += 1


class IngestConfirmations:
    """Confirms what the gateway forwards, as the cloud's ingest does once it has stored it: the
    ids of results (alone or in batches) and escalations, in ``ack`` messages on the cloud broker
    (otherwise the gateway sends them all again after ``outbox_confirm_s``)."""

    def __init__(self, publish: Callable[[Outgoing], object]) -> None:
        self._publish = publish

    def __call__(self, seen: Seen) -> None:
        t = seen.topic
        if t is None or t.kind not in (Kind.RESULT, Kind.RESULT_BATCH, Kind.ESCALATION):
            return
        try:
            message = seen.decoded().message
        except ContractError:
            return
        if isinstance(message, ResultBatchMessage):
            ids = [entry.result.msg_id for entry in message.results]
        else:
            ids = [message.msg_id]
        for wire in ack_wires(t.site, t.device, ids, t.prefix):
            self._publish(wire)


class CloudSide:
    """Builds the downward messages of one device and their topics on the cloud broker."""

    def __init__(self, ids: SiteIds) -> None:
        self.ids = ids

    def wire(self, kind: Kind, message: Message, sub: str | None = None) -> Outgoing:
        ids = self.ids
        return Outgoing(topic(ids.site, ids.device, kind, sub, prefix=ids.prefix), encode(message))

    def command(self, name: str, args: dict[str, object] | None = None) -> tuple[Outgoing, str]:
        """``cmd/<name>`` and its correlation id."""
        command = CommandMessage.model_validate(
            {"correlation": new_message_id(), "args": args or {}}
        )
        return self.wire(Kind.CMD, command, name), command.correlation

    def offer(self, rollout_id: str, manifest: ModelManifest) -> Outgoing:
        message = ModelOfferMessage(rollout_id=rollout_id, manifest=manifest)
        return self.wire(Kind.MODEL, message, ModelSub.OFFER)
