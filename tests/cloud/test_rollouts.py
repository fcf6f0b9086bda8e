"""Staged rollouts with everything real: two cameras behind a gateway, the cloud service (ingest,
model distributor, rollout controller) on its HTTP API, a re-inference worker.

The new model is the committed fp32 edge model shipped with a wrong labels file (every label
shifted by one): a real mistake that loading cannot catch, since the file and the number of
labels are fine. Once it runs on the canary camera, the cloud's verdicts disagree with its
escalations far more than with the baseline camera's; the controller measures that and rolls
the canary back to the baseline model, and the second camera never gets the offer.

The cloud runs as two replicas (two served apps on one database and one broker, each with its
rollout controller), and a collector on the cloud broker counts the offers: each device is
offered a rollout, and a rollback, exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.db.models import Device, ModelAck, ModelVersion
from edgecascade.cloud.registry import Upload, register
from edgecascade.cloud.rollouts import RolloutController, RolloutRequest
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.worker import ReinferenceWorker
from edgecascade.edge_agent.settings import EscalationSettings, SourceSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.codec import decode
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.model_messages import ModelOfferMessage
from edgecascade.shared.runtime.card import load_card_for
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic_filter
from tests.cloud.conftest import ApiClient, serving
from tests.gateway.conftest import RunningGateway
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EDGE_MODEL_FP32, sample_subset

CAMERAS = ("cam1", "cam2")


def register_model(
    services: Services, settings: CloudSettings, path: Path, version: str, shift: int
) -> ModelVersion:
    """Register ``path`` as fashion-edge ``version`` with its labels rotated by ``shift``."""
    card = load_card_for(path)
    labels = card.labels[shift:] + card.labels[:shift]
    with services.sessions() as session:
        return register(
            session,
            settings,
            Upload(
                path.read_bytes(),
                "fashion-edge",
                version,
                labels,
                card.preprocess.model_dump(mode="json"),
            ),
            created_by="test",
        )


class Fleet:
    """Brokers, the served cloud, a worker, a gateway and two cameras on the baseline model."""

    def __init__(self, tmp_path: Path, cloud_settings: CloudSettings) -> None:
        self.site_broker = MosquittoBroker(tmp_path / "site")
        self.cloud_broker = MosquittoBroker(tmp_path / "cloud-broker")
        self.site_broker.start()
        self.cloud_broker.start()
        self.settings = CloudSettings.model_validate(
            {
                **cloud_settings.model_dump(),
                "mqtt": self.cloud_broker.settings.model_dump(),
                "rollouts": {"interval_s": 0.5},
            }
        )
        _, self.public_key = generate_keys(self.settings.signing_key_path.parent)
        self.tmp_path = tmp_path
        self.parts: list[Any] = []
        self.offers: Collector | None = None

    def register(self, services: Services, path: Path, version: str, shift: int) -> ModelVersion:
        return register_model(services, self.settings, path, version, shift)

    def start_edge(self, services: Services) -> None:
        worker_options = self.settings.worker.model_copy(update={"model": CLOUD_MODEL})
        runtime = ModelRuntime.load(CLOUD_MODEL)
        mqtt = self.cloud_broker.settings
        worker = ReinferenceWorker(services.engine, runtime, mqtt=mqtt, options=worker_options)
        worker.start()
        self.parts.append(worker)
        self.parts.append(
            RunningGateway(
                GatewaySettings.model_validate(
                    {
                        "site": "site1",
                        "data_dir": self.tmp_path / "gw",
                        "site_mqtt": self.site_broker.settings,
                        "cloud_mqtt": self.cloud_broker.settings,
                        "model_public_key": self.public_key,
                        "batch": {"linger_ms": 50},
                    }
                )
            )
        )
        frames = self.tmp_path / "frames"
        sample_subset(frames, per_class=3)
        for camera in CAMERAS:
            escalation = EscalationSettings(
                threshold=0.995, cooldown_s=0, budget_per_minute=6000, burst=100
            )
            self.parts.append(
                RunningAgent(
                    agent_settings(
                        self.site_broker,
                        self.tmp_path / camera,
                        SourceSettings(path=frames, fps=15, loop=True),
                        site="site1",
                        device=camera,
                        model=EDGE_MODEL,
                        model_public_key=self.public_key,
                        escalation=escalation,
                    )
                )
            )

    def stop_edge(self) -> None:
        """Cameras, gateway and worker, newest first (before the cloud service closes)."""
        while self.parts:
            part = self.parts.pop()
            part.stop() if isinstance(part, ReinferenceWorker) else part.close()

    def close(self) -> None:
        self.stop_edge()
        self.site_broker.stop()
        self.cloud_broker.stop()


@pytest.fixture
def fleet(tmp_path: Path, cloud_settings: CloudSettings) -> Iterator[Fleet]:
    made = Fleet(tmp_path, cloud_settings)
    yield made
    made.close()


def device_models(services: Services) -> dict[str, str | None]:
    with services.sessions() as session:
        rows = session.scalars(select(Device).where(Device.device_id.in_(CAMERAS)))
        return {row.device_id: row.model_sha256 for row in rows}


def acks(services: Services) -> list[tuple[str, str, str]]:
    with services.sessions() as session:
        rows = session.scalars(select(ModelAck).order_by(ModelAck.ts))
        return [(row.rollout_id, row.device_id, row.status) for row in rows]


def offer_messages(collector: Collector | None) -> list[ModelOfferMessage]:
    assert collector is not None
    return [
        ModelOfferMessage.model_validate(decode(Topic.parse(m.topic), m.payload).message)
        for m in collector.messages
    ]


def offers(collector: Collector | None) -> Counter[tuple[str, str]]:
    """How often each (rollout id, device) offer crossed the cloud broker."""
    assert collector is not None
    seen: Counter[tuple[str, str]] = Counter()
    for message in collector.messages:
        wire = Topic.parse(message.topic)
        offer = ModelOfferMessage.model_validate(decode(wire, message.payload).message)
        seen[(offer.rollout_id, wire.device)] += 1
    return seen


@contextmanager
def served_fleet(
    fleet: Fleet, new_label_shift: int
) -> Iterator[tuple[ApiClient, ModelVersion, ModelVersion]]:
    """Two cloud replicas served, the baseline (1.0.0) and the new model (1.1.0) registered,
    the cameras on the baseline; yields a viewer's client (on the first replica; the
    offers collector is ``fleet.offers``) and both registry rows."""
    app = create_app(fleet.settings)
    replica = create_app(fleet.settings.model_copy(update={"client_id": "cloud-replica"}))
    offer_filter = topic_filter(Kind.MODEL, sub=ModelSub.OFFER, prefix=fleet.settings.mqtt.prefix)
    with (
        Collector(fleet.cloud_broker.settings, offer_filter) as collector,
        serving(app) as base,
        serving(replica),
        ApiClient(base_url=base, timeout=30) as api,
    ):
        fleet.offers = collector
        services: Services = app.state.services
        api.services = services
        api.headers.update(api.as_role("viewer"))
        baseline = fleet.register(services, EDGE_MODEL, "1.0.0", shift=0)
        new = fleet.register(services, EDGE_MODEL_FP32, "1.1.0", shift=new_label_shift)
        fleet.start_edge(services)
        assert wait_until(
            lambda: device_models(services) == dict.fromkeys(CAMERAS, baseline.sha256), timeout=30
        ), device_models(services)
        yield api, baseline, new


def test_a_model_that_disagrees_with_the_cloud_is_rolled_back(fleet: Fleet) -> None:
    with served_fleet(fleet, new_label_shift=1) as (api, baseline, shifted):
        services = api.services

        operator = api.as_role("operator")
        criteria = {"stage_min_s": 1, "min_verdicts": 12, "max_latency_ratio": 50}
        request = {
            "model_name": "fashion-edge",
            "model_version": "1.1.0",
            "site": "site1",
            "stages": [50, 100],
            "criteria": criteria,
        }
        assert api.post("/api/rollouts", json=request).status_code == 403  # a viewer cannot
        created = api.post("/api/rollouts", json=request, headers=operator)
        assert created.status_code == 201, created.text
        rollout = created.json()
        assert rollout["baseline_version"] == "1.0.0" and rollout["state"] == "running"
        (canary,) = rollout["offered"]  # 50 % of two cameras
        other = next(c for c in CAMERAS if c != canary)

        def state() -> dict[str, Any]:
            body: dict[str, Any] = api.get(f"/api/rollouts/{rollout['id']}").json()
            return body

        assert wait_until(lambda: state()["state"] == "rolled_back", timeout=120), (
            state(),
            acks(services),
        )
        final = state()
        log = acks(services)
        assert wait_until(lambda: device_models(services)[canary] == baseline.sha256, timeout=30)
        assert device_models(services)[other] == baseline.sha256
        fleet.stop_edge()
    # Why: the figures, measured on both models over the same period.
    new, base_side = final["evaluation"]["new"], final["evaluation"]["baseline"]
    assert "the cloud disagrees with" in final["reason"], final["reason"]
    assert new["verdicts"] >= 12 and base_side["verdicts"] >= 12
    assert new["disagreement"] > base_side["disagreement"] + 0.15
    # The canary ran the new model, then the baseline again; the other camera was never offered.
    assert (rollout["id"], canary, "applied") in log
    assert (f"{rollout['id']}-rb", canary, "applied") in log
    assert all(device == canary for _, device, _ in log)
    assert final["offered"] == [canary]
    assert list(final["device_states"]) == [canary]
    assert final["device_states"][canary] in ("rollback applied", "rollback committed")
    assert offers(fleet.offers) == {(rollout["id"], canary): 1, (f"{rollout['id']}-rb", canary): 1}
    assert shifted.sha256 != baseline.sha256
    # Each offer signed with its own sequence and expiry; the rollback signed as one, and later.
    first, back = offer_messages(fleet.offers)
    assert (first.manifest.rollback, back.manifest.rollback) == (False, True)
    assert 0 < first.manifest.sequence < back.manifest.sequence
    assert first.manifest.expires_at is not None and first.manifest.expires_at > first.ts


def test_a_sound_model_widens_stage_by_stage_to_every_camera(fleet: Fleet) -> None:
    with served_fleet(fleet, new_label_shift=0) as (api, _, sound):
        services = api.services
        criteria = {"stage_min_s": 1, "min_verdicts": 12, "max_latency_ratio": 50}
        request = {
            "model_name": "fashion-edge",
            "model_version": "1.1.0",
            "site": "site1",
            "stages": [50, 100],
            "criteria": criteria,
        }
        created = api.post("/api/rollouts", json=request, headers=api.as_role("operator"))
        assert created.status_code == 201, created.text
        url = f"/api/rollouts/{created.json()['id']}"
        assert wait_until(lambda: api.get(url).json()["state"] == "completed", timeout=120), (
            api.get(url).json()
        )
        final = api.get(url).json()
        # A second rollout of the same model has nothing to do.
        again = api.post("/api/rollouts", json=request, headers=api.as_role("operator"))
        running = device_models(services)
        fleet.stop_edge()
    assert final["stage"] == 1 and sorted(final["offered"]) == list(CAMERAS)
    assert final["evaluation"]["new"]["verdicts"] >= 12
    assert running == dict.fromkeys(CAMERAS, sound.sha256)
    assert again.status_code == 409 and "run fashion-edge 1.1.0 already" in again.text
    assert offers(fleet.offers) == {(final["id"], camera): 1 for camera in CAMERAS}


def test_offers_that_get_no_answer_are_sent_again(
    tmp_path: Path, cloud_settings: CloudSettings
) -> None:
    """A replica that dies between committing a stage and sending its offers, or an offer lost in
    an outage, must not leave a rollout waiting forever: a device that does not answer within
    ``rollouts.resend_s`` is offered again, and one that answered is left alone."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    settings = CloudSettings.model_validate(
        {
            **cloud_settings.model_dump(),
            "mqtt": broker.settings.model_dump(),
            "rollouts": {"interval_s": 0.2, "resend_s": 1.0},
        }
    )
    generate_keys(settings.signing_key_path.parent)
    services = open_services(settings, start_ingest=False)
    controller = RolloutController(services.engine, settings)
    offer_filter = topic_filter(Kind.MODEL, sub=ModelSub.OFFER, prefix=settings.mqtt.prefix)
    try:
        baseline = register_model(services, settings, EDGE_MODEL, "1.0.0", shift=0)
        register_model(services, settings, EDGE_MODEL_FP32, "1.1.0", shift=0)
        now = time.time()
        with services.sessions() as session:
            for camera in CAMERAS:
                session.add(
                    Device(
                        site_id="site1",
                        device_id=camera,
                        status="online",
                        role="agent",
                        model_name="fashion-edge",
                        model_version="1.0.0",
                        model_sha256=baseline.sha256,
                        first_seen=now,
                        last_seen=now,
                    )
                )
            session.commit()
        with Collector(broker.settings, offer_filter) as collector:
            controller.begin()
            request = RolloutRequest(
                model_name="fashion-edge", model_version="1.1.0", site="site1", stages=[100.0]
            )
            rollout = controller.create(request, created_by="test")
            assert wait_until(lambda: offers(collector)[(rollout.id, "cam1")] >= 1, timeout=10)
            with services.sessions() as session:  # cam1 answers; cam2 stays silent
                session.add(
                    ModelAck(
                        msg_id="ack-cam1",
                        site_id="site1",
                        device_id="cam1",
                        rollout_id=rollout.id,
                        version="1.1.0",
                        sha256=rollout.sha256,
                        status="downloading",
                        detail="",
                        ts=time.time(),
                        received_at=time.time(),
                    )
                )
                session.commit()
            assert wait_until(lambda: offers(collector)[(rollout.id, "cam2")] >= 3, timeout=15)
            seen = offers(collector)
    finally:
        controller.stop()
        services.close()
        broker.stop()
    assert seen[(rollout.id, "cam1")] <= 2  # at most one resend raced the ack
    assert controller.counts["resent"] >= 2
