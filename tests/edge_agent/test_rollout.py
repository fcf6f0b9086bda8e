"""Model slots A/B over a real broker: signed offers, resumable chunks, smoke tests, rollback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.settings import SourceSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.manifest import (
    build_manifest,
    generate_keys,
    load_private_key,
    sign_offer,
)
from edgecascade.shared.messages import ResultMessage
from edgecascade.shared.model_messages import ModelAckMessage, ModelManifest, ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic, topic_filter
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.model_server import ModelServer, manifest_for
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, sample_subset

SITE, DEVICE = "s1", "cam1"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    private, public = generate_keys(tmp_path / "keys")
    return load_private_key(private), public


@pytest.fixture
def start_agent(
    broker: MosquittoBroker, tmp_path: Path, keys: tuple[Ed25519PrivateKey, Path]
) -> Iterator[object]:
    sample_subset(tmp_path / "frames", per_class=2)
    running: list[RunningAgent] = []

    def start() -> RunningAgent:
        source = SourceSettings(path=tmp_path / "frames", fps=40, loop=True)
        settings = agent_settings(broker, tmp_path / "agent", source, model_public_key=keys[1])
        agent = RunningAgent(settings)
        running.append(agent)
        return agent

    yield start
    for agent in running:
        agent.close()


def acks(collector: Collector) -> list[ModelAckMessage]:
    out = []
    for m in collector.messages:
        message = decode(Topic.parse(m.topic), m.payload).message
        if isinstance(message, ModelAckMessage):
            out.append(message)
    return out


def latest_model(collector: Collector) -> str:
    """The model of the newest result made (by its creation time: after a restart the outbox
    sends the last 90 s of results again, older ones arriving after newer)."""
    results = [
        message
        for m in collector.messages
        if isinstance(message := decode(Topic.parse(m.topic), m.payload).message, ResultMessage)
    ]
    return max(results, key=lambda r: r.ts).model.sha256 if results else ""


def offer(broker: MosquittoBroker, manifest: ModelManifest, rollout: str = "r1") -> None:
    message = ModelOfferMessage(rollout_id=rollout, manifest=manifest)
    publish_all(
        broker.settings,
        [Outgoing(topic(SITE, DEVICE, Kind.MODEL, ModelSub.OFFER), encode(message))],
    )


def test_signed_model_is_fetched_verified_switched_and_survives_restart(
    broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path], start_agent: object
) -> None:
    content = CLOUD_MODEL.read_bytes()
    manifest = manifest_for(content, keys[0])
    edge_sha = load_card_for(EDGE_MODEL).sha256
    assert callable(start_agent)
    with (
        Collector(
            broker.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), topic_filter(Kind.RESULT)
        ) as seen,
        ModelServer(broker.settings, manifest, content) as server,
    ):
        agent = start_agent()
        assert wait_until(lambda: latest_model(seen) == edge_sha)
        server.withhold = {2, 5}  # some chunks get lost on the way the first time
        offer(broker, manifest)
        assert wait_until(lambda: len(server.requests) >= 1)
        server.withhold = set()
        assert wait_until(lambda: [a.status for a in acks(seen)][-1:] == ["applied"], timeout=30)
        assert [a.status for a in acks(seen)] == ["downloading", "verified", "applied"]
        assert sorted(server.requests[1]) == [2, 5]  # only the missing chunks asked again
        assert wait_until(lambda: latest_model(seen) == manifest.sha256)
        agent.close()
        restarted = start_agent()
        seen_before = len(seen.messages)
        assert wait_until(lambda: len(seen.messages) > seen_before + 5)
        assert latest_model(seen) == manifest.sha256  # the installed slot is used after restart
        restarted.close()


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        ("unsigned", "not signed"),
        ("wrong key", "bad signature"),
        ("bad hash", "sha256"),
        ("failing smoke test", "smoke test 0 failed"),
        ("corrupt model", "does not load"),
        ("expired offer", "expired at"),
    ],
)
def test_rejected_models_keep_the_old_one_serving(
    problem: str,
    reason: str,
    broker: MosquittoBroker,
    keys: tuple[Ed25519PrivateKey, Path],
    start_agent: object,
) -> None:
    content = CLOUD_MODEL.read_bytes()
    key = keys[0]
    served = content
    if problem == "unsigned":
        manifest = manifest_for(content, None)
    elif problem == "wrong key":
        manifest = manifest_for(content, Ed25519PrivateKey.generate())
    elif problem == "bad hash":
        manifest = manifest_for(content, key)
        served = content[:-10] + b"\0" * 10  # tampered in transit
    elif problem == "failing smoke test":
        manifest = manifest_for(content, key, index=3, score=0.5)
    elif problem == "expired offer":  # signed two hours ago for one hour
        manifest = sign_offer(manifest_for(content, None), key, 1, 3600, now=time.time() - 7200)
    else:
        served = bytes(range(256)) * (len(content) // 256)  # signed, hashed garbage
        manifest = manifest_for(served, key)
    edge_sha = load_card_for(EDGE_MODEL).sha256
    assert callable(start_agent)
    with (
        Collector(
            broker.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), topic_filter(Kind.RESULT)
        ) as seen,
        ModelServer(broker.settings, manifest, served),
    ):
        agent = start_agent()
        assert wait_until(lambda: latest_model(seen) == edge_sha)
        offer(broker, manifest)
        assert wait_until(lambda: any(a.status == "failed" for a in acks(seen)), timeout=30)
        failed = next(a for a in acks(seen) if a.status == "failed")
        assert reason in failed.detail
        count = len(seen.messages)
        assert wait_until(lambda: len(seen.messages) > count + 5)
        assert latest_model(seen) == edge_sha  # still the old model
        assert agent.thread.is_alive()


def test_a_replayed_older_offer_does_not_take_the_device_back(
    broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path], start_agent: object
) -> None:
    """Offer 100 (validly signed for the factory model, captured on the wire) replayed after
    offer 200 installed the new model is refused: the device stays where offer 200 put it."""
    key = keys[0]
    edge_card = load_card_for(EDGE_MODEL)
    old = sign_offer(
        build_manifest(
            EDGE_MODEL.read_bytes(),
            name=edge_card.name,
            version=edge_card.version,
            labels=edge_card.labels,
            card=edge_card.model_dump(mode="json", include={"preprocess", "output"}),
        ),
        key,
        100,
        3600,
    )
    content = CLOUD_MODEL.read_bytes()
    new = sign_offer(manifest_for(content, None), key, 200, 3600)
    assert callable(start_agent)
    with (
        Collector(
            broker.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), topic_filter(Kind.RESULT)
        ) as seen,
        ModelServer(broker.settings, new, content),
    ):
        agent = start_agent()
        assert wait_until(lambda: latest_model(seen) == edge_card.sha256)  # subscribed
        offer(broker, new, rollout="r1")
        assert wait_until(lambda: latest_model(seen) == new.sha256, timeout=30)
        offer(broker, old, rollout="r0")
        assert wait_until(lambda: [a.status for a in acks(seen)][-1:] == ["failed"], timeout=30)
        assert "sequence 100, below 200 already accepted" in acks(seen)[-1].detail
        count = len(seen.messages)
        assert wait_until(lambda: len(seen.messages) > count + 5)
        assert latest_model(seen) == new.sha256
        assert agent.thread.is_alive()


def test_corrupt_active_slot_falls_back_to_the_factory_model(
    broker: MosquittoBroker,
    keys: tuple[Ed25519PrivateKey, Path],
    start_agent: object,
    tmp_path: Path,
) -> None:
    content = CLOUD_MODEL.read_bytes()
    manifest = manifest_for(content, keys[0])
    assert callable(start_agent)
    with (
        Collector(
            broker.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), topic_filter(Kind.RESULT)
        ) as seen,
        ModelServer(broker.settings, manifest, content),
    ):
        agent = start_agent()
        assert wait_until(lambda: latest_model(seen) != "")  # subscribed and running
        offer(broker, manifest)
        assert wait_until(lambda: latest_model(seen) == manifest.sha256, timeout=30)
        agent.close()
        slot_file = next((tmp_path / "agent" / "slots").glob("*/model.tflite"))
        slot_file.write_bytes(b"corrupted on disk")
        restarted = start_agent()
        # Its newest results come from the factory model (the replayed ones are older).
        factory = load_card_for(EDGE_MODEL).sha256
        assert wait_until(lambda: latest_model(seen) == factory, timeout=30)
        restarted.close()


def test_download_resumes_after_agent_restart(
    broker: MosquittoBroker, keys: tuple[Ed25519PrivateKey, Path], start_agent: object
) -> None:
    content = CLOUD_MODEL.read_bytes()
    manifest = manifest_for(content, keys[0])
    total = -(-len(content) // manifest.chunk_size)
    assert total >= 6 and callable(start_agent)
    with (
        Collector(
            broker.settings, topic_filter(Kind.MODEL, sub=ModelSub.ACK), topic_filter(Kind.RESULT)
        ) as seen,
        ModelServer(broker.settings, manifest, content) as server,
    ):
        agent = start_agent()
        assert wait_until(lambda: latest_model(seen) != "")
        server.withhold = set(range(3, total))  # the uplink dies after three chunks
        offer(broker, manifest)
        assert wait_until(lambda: len(server.requests) >= 1)
        got = agent.agent.settings.data_dir / "slots" / "staging" / f"{manifest.sha256}.got"
        # All three stored, not just the first: the index file appears with chunk 0.
        assert wait_until(lambda: got.exists() and json.loads(got.read_text()) == [0, 1, 2])
        agent.close()  # stopped mid-download
        server.withhold = set()
        server.requests.clear()
        count = len(seen.messages)
        restarted = start_agent()
        assert wait_until(lambda: len(seen.messages) > count + 3)  # running and subscribed
        offer(broker, manifest, rollout="r1-again")
        assert wait_until(lambda: latest_model(seen) == manifest.sha256, timeout=30)
        assert sorted(server.requests[0]) == list(range(3, total))  # only what was missing
        restarted.close()
