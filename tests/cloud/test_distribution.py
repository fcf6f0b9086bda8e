"""A registered model reaches a real agent: the cloud's distributor serves the registry's file to
the site gateway's cache, the agent fetches it from there, verifies the signed manifest and the
golden image, switches, and its acks and new state are stored in the cloud."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.db.models import Device, ModelAck
from edgecascade.cloud.registry import Upload, manifest_of, register
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.edge_agent.settings import SourceSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.codec import encode
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.model_messages import ModelOfferMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.topics import Kind, ModelSub, topic
from tests.gateway.conftest import RunningGateway
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.mqtt import publish_all, wait_until
from tests.utils.paths import CLOUD_MODEL, EVAL_SAMPLE, sample_subset


def statuses(services: Services, device: str) -> list[str]:
    with services.sessions() as session:
        rows = session.scalars(
            select(ModelAck).where(ModelAck.device_id == device).order_by(ModelAck.ts)
        )
        return [row.status for row in rows]


def test_a_registered_model_travels_from_the_registry_to_a_camera(
    cloud_settings: CloudSettings, tmp_path: Path
) -> None:
    site_broker, cloud_broker = MosquittoBroker(tmp_path / "site"), MosquittoBroker(tmp_path / "cb")
    site_broker.start()
    cloud_broker.start()
    settings = CloudSettings.model_validate(
        {**cloud_settings.model_dump(), "mqtt": cloud_broker.settings.model_dump()}
    )
    _, public = generate_keys(settings.signing_key_path.parent)
    services = open_services(settings)
    gateway = agent = None
    try:
        card = load_card_for(CLOUD_MODEL)
        with services.sessions() as session:
            row = register(
                session,
                settings,
                Upload(
                    content=CLOUD_MODEL.read_bytes(),
                    name="fashion-cloud",
                    version="2.0.0",
                    labels=card.labels,
                    preprocess=card.preprocess.model_dump(mode="json"),
                    golden_image=sorted(EVAL_SAMPLE.rglob("*.png"))[0].read_bytes(),
                ),
                created_by="test",
            )
            manifest = manifest_of(row)
        gateway = RunningGateway(
            GatewaySettings.model_validate(
                {
                    "site": "site1",
                    "data_dir": tmp_path / "gw",
                    "site_mqtt": site_broker.settings,
                    "cloud_mqtt": cloud_broker.settings,
                    "model_public_key": public,
                }
            )
        )
        sample_subset(tmp_path / "frames", per_class=1)
        agent = RunningAgent(
            agent_settings(
                site_broker,
                tmp_path / "cam1",
                SourceSettings(path=tmp_path / "frames", fps=20, loop=True),
                site="site1",
                device="cam1",
                model_public_key=public,
            )
        )
        assert services.distributor is not None and services.distributor.wait_connected(10)
        assert wait_until(lambda: "online" in _device_status(services, "cam1"), timeout=30)
        offer = ModelOfferMessage(rollout_id="r1", manifest=manifest)
        publish_all(
            cloud_broker.settings,
            [Outgoing(topic("site1", "cam1", Kind.MODEL, ModelSub.OFFER), encode(offer))],
            client_id="rollout",
        )
        assert wait_until(lambda: "applied" in statuses(services, "cam1"), timeout=60), (
            statuses(services, "cam1"),
            dict(services.distributor.counts),
        )
        # The camera now reports the registry's model in its state; the chunks came from the
        # distributor once, to the gateway, not to the camera.
        assert wait_until(lambda: _device_model(services, "cam1") == manifest.sha256, timeout=30)
        assert (
            services.distributor.counts["chunks.sent"] >= manifest.size_bytes // manifest.chunk_size
        )
        assert statuses(services, "cam1")[0] in ("downloading", "verified")
    finally:
        if agent is not None:
            agent.close()
        if gateway is not None:
            gateway.close()
        services.close()
        site_broker.stop()
        cloud_broker.stop()


def _device_status(services: Services, device: str) -> str:
    with services.sessions() as session:
        row = session.scalar(select(Device).where(Device.device_id == device))
        return row.status if row is not None else ""


def _device_model(services: Services, device: str) -> str | None:
    with services.sessions() as session:
        row = session.scalar(select(Device).where(Device.device_id == device))
        return row.model_sha256 if row is not None else None
