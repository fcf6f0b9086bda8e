"""The site's model cache with real agents: a model offered to two devices is fetched from the
cloud once, verified, and served to both from the gateway's disk; a wrongly signed offer never
reaches a device."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.settings import SourceSettings
from edgecascade.shared.chunks import chunk_count
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.manifest import generate_keys, load_private_key
from edgecascade.shared.model_messages import (
    ModelAckMessage,
    ModelChunkRequestMessage,
    ModelOfferMessage,
)
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic, topic_filter
from tests.gateway.conftest import SITE, StartGateway
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.model_server import ModelServer, manifest_for
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import CLOUD_MODEL, sample_subset

DEVICES = ("cam1", "cam2")


def acks(collector: Collector) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in collector.messages:
        parsed = Topic.parse(m.topic)
        message = decode(parsed, m.payload).message
        if isinstance(message, ModelAckMessage):
            out.setdefault(parsed.device, []).append(message.status)
    return out


def test_a_model_for_two_devices_is_fetched_once_and_served_from_the_cache(
    brokers: tuple[MosquittoBroker, MosquittoBroker],
    start_gateway: StartGateway,
    tmp_path: Path,
) -> None:
    site, cloud = brokers
    private, public = generate_keys(tmp_path / "keys")
    key = load_private_key(private)
    gw = start_gateway(model_public_key=public)
    sample_subset(tmp_path / "frames", per_class=1)
    agents = [
        RunningAgent(
            agent_settings(
                site,
                tmp_path / device,
                SourceSettings(path=tmp_path / "frames", fps=20, loop=True),
                site=SITE,
                device=device,
                model_public_key=public,
            )
        )
        for device in DEVICES
    ]
    content = CLOUD_MODEL.read_bytes()
    manifest = manifest_for(content, key)
    forged = manifest_for(content, Ed25519PrivateKey.generate()).model_copy(
        update={"version": "6.6.6"}
    )
    total = chunk_count(manifest)
    try:
        with (
            ModelServer(cloud.settings, manifest, content) as server,
            Collector(
                cloud.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), client_id="acks"
            ) as up,
            Collector(
                site.settings, topic_filter(Kind.MODEL, sub=ModelSub.OFFER), client_id="spy"
            ) as spy,
        ):
            publish_all(
                cloud.settings,
                [
                    Outgoing(
                        topic(SITE, device, Kind.MODEL, ModelSub.OFFER),
                        encode(ModelOfferMessage(rollout_id="r1", manifest=m)),
                    )
                    for m in (forged, manifest)
                    for device in DEVICES
                ],
                client_id="cloud-rollout",
            )
            assert wait_until(
                lambda: all("applied" in acks(up).get(d, []) for d in DEVICES), timeout=60
            ), acks(up)
            offers = [decode(Topic.parse(m.topic), m.payload).message for m in spy.messages]
        # Fetched from the cloud by the gateway alone, once; served to both devices from disk.
        assert set(server.requested_by) == {"gateway"}
        assert sorted(i for request in server.requests for i in request) == list(range(total))
        counts = gw.gateway.cache.counts
        assert counts["fetches.completed"] == 1
        assert counts["chunks.served"] >= 2 * total
        assert gw.gateway.cache.has(manifest.sha256)
        # The forged offer stopped at the gateway: the devices only ever saw the signed one.
        assert [o.manifest.version for o in offers if isinstance(o, ModelOfferMessage)] == [
            manifest.version
        ] * len(DEVICES)
        assert any("signature" in reason for reason in gw.gateway.rejected)
    finally:
        for agent in agents:
            agent.close()


def test_a_fetch_cut_by_a_gateway_restart_resumes_with_the_missing_chunks(
    brokers: tuple[MosquittoBroker, MosquittoBroker],
    start_gateway: StartGateway,
    tmp_path: Path,
) -> None:
    _, cloud = brokers
    private, public = generate_keys(tmp_path / "keys")
    content = CLOUD_MODEL.read_bytes()
    manifest = manifest_for(content, load_private_key(private))
    total = chunk_count(manifest)
    late = set(range(total // 2, total))  # the cloud withholds these until the restart
    offer = Outgoing(
        topic(SITE, "cam1", Kind.MODEL, ModelSub.OFFER),
        encode(ModelOfferMessage(rollout_id="r1", manifest=manifest)),
    )
    with ModelServer(cloud.settings, manifest, content) as server:
        server.withhold = set(late)
        gw = start_gateway(model_public_key=public)
        publish_all(cloud.settings, [offer], client_id="cloud-rollout")
        before = gw.gateway.cache
        assert wait_until(lambda: before.counts["chunks.fetched"] == total - len(late), timeout=30)
        gw.close()

        server.requests.clear()
        server.withhold.clear()
        gw = start_gateway(model_public_key=public)  # no new offer: it remembers the manifest
        cache = gw.gateway.cache
        assert wait_until(lambda: cache.has(manifest.sha256), timeout=30)
    # Only what was missing was asked for again; the cached copy is served to the devices.
    assert {i for request in server.requests for i in request} == late
    served = cache.serve(ModelChunkRequestMessage(sha256=manifest.sha256, indexes=[0, total - 1]))
    assert [body for _, body in served] == [
        content[: manifest.chunk_size],
        content[(total - 1) * manifest.chunk_size :],
    ]
