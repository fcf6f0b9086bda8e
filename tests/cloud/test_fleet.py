"""Remote config, tags and diagnostics end to end: the served cloud (ingest on, both databases),
a cloud and a site broker, the gateway and two real agents. The cloud reaches the agents only
through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.fleet.configs import tags_of
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.edge_agent.settings import EscalationSettings, SourceSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import ApiClient, inbound, serving
from tests.gateway.conftest import RunningGateway
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.factories import make_state
from tests.utils.mqtt import wait_until
from tests.utils.paths import sample_subset

CAMERAS = ("cam1", "cam2")


class Site:
    """Two brokers, a gateway and two agents of ``site1``."""

    def __init__(self, tmp_path: Path) -> None:
        self.site_broker = MosquittoBroker(tmp_path / "site")
        self.cloud_broker = MosquittoBroker(tmp_path / "cloud-broker")
        self.site_broker.start()
        self.cloud_broker.start()
        self.parts: list[Any] = []
        self.agents: dict[str, RunningAgent] = {}
        self.tmp_path = tmp_path

    def start(self) -> None:
        gateway = GatewaySettings.model_validate(
            {
                "site": "site1",
                "data_dir": self.tmp_path / "gw",
                "site_mqtt": self.site_broker.settings,
                "cloud_mqtt": self.cloud_broker.settings,
            }
        )
        self.parts.append(RunningGateway(gateway))
        frames = self.tmp_path / "frames"
        sample_subset(frames, per_class=1)
        for camera in CAMERAS:
            agent = RunningAgent(
                agent_settings(
                    self.site_broker,
                    self.tmp_path / camera,
                    SourceSettings(path=frames, fps=10, loop=True),
                    site="site1",
                    device=camera,
                    gateway_id="gateway",
                    escalation=EscalationSettings(threshold=0.6, audit_fraction=0),
                )
            )
            self.agents[camera] = agent
            self.parts.append(agent)

    def close(self) -> None:
        while self.parts:
            self.parts.pop().close()
        self.site_broker.stop()
        self.cloud_broker.stop()


@pytest.fixture
def served(tmp_path: Path, cloud_settings: CloudSettings) -> Iterator[tuple[ApiClient, Site]]:
    site = Site(tmp_path)
    settings = CloudSettings.model_validate(
        {
            **cloud_settings.model_dump(),
            "mqtt": site.cloud_broker.settings.model_dump(),
            "fleet": {"interval_s": 0.5, "command_timeout_s": 3},
        }
    )
    app = create_app(settings)
    try:
        with serving(app) as base, ApiClient(base_url=base, timeout=30) as api:
            api.services = app.state.services
            api.headers.update(api.as_role("viewer"))
            site.start()
            assert wait_until(lambda: len(configs(api)) == 2, timeout=30)  # both agents heard
            yield api, site
            site.close()
    finally:
        site.close()


def configs(api: ApiClient) -> dict[str, dict[str, Any]]:
    items = api.get("/api/config/devices").json()["items"]
    return {item["device"]: item for item in items}


def test_config_targets_a_tag_expression_through_the_gateway(
    served: tuple[ApiClient, Site],
) -> None:
    api, site = served
    operator = api.as_role("operator")
    for device, tags in (("cam1", ["zone:north"]), ("cam2", ["zone:north", "model:old"])):
        put = api.put(f"/api/devices/site1/{device}/tags", json={"tags": tags}, headers=operator)
        assert put.status_code == 200, put.text
    request = {
        "tags": "zone:north and not model:old",
        "settings": {"escalation": {"threshold": 0.3}, "source": {"fps": 5}},
    }
    created = api.post("/api/config", json=request, headers=operator)
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    assert wait_until(lambda: configs(api)["cam1"]["reported"] == version, timeout=20)
    # The state naming the version and the command's reply travel apart: either may come first.
    config_of_cam1 = "/api/devices/site1/cam1/config"
    assert wait_until(lambda: api.get(config_of_cam1).json()["reply"] is not None, timeout=20)
    cam1 = api.get(config_of_cam1).json()
    assert cam1["desired"] == version and cam1["drift"] is False
    assert cam1["settings"] == request["settings"] and cam1["reply"]["status"] == "ok"
    assert site.agents["cam1"].agent.settings.escalation.threshold == 0.3
    assert site.agents["cam1"].agent.settings.source.fps == 5
    assert configs(api)["cam2"]["desired"] is None  # model:old is left out
    assert site.agents["cam2"].agent.settings.escalation.threshold == 0.6

    # Valid for the schema, refused by the agent (its model has no such label): drift, with
    # the agent's reason, and cam2 keeps what it ran.
    refused = {"escalation": {"class_thresholds": {"unicorn": 0.5}}}
    body = {"site": "site1", "devices": ["cam2"], "settings": refused}
    assert api.post("/api/config", json=body, headers=operator).status_code == 201
    assert wait_until(lambda: configs(api)["cam2"]["refused"], timeout=20)
    cam2 = configs(api)["cam2"]
    assert cam2["drift"] is True and cam2["reported"] is None
    assert "unicorn" in cam2["reply"]["error"]
    assert site.agents["cam2"].agent.settings.escalation.class_thresholds == {}

    # Rollouts take the same tag expressions: one that does not parse is a 422 with the position.
    rollout = {"model_name": "m", "model_version": "2", "site": "site1", "tags": "zone:north ("}
    refused_rollout = api.post("/api/rollouts", json=rollout, headers=operator)
    assert refused_rollout.status_code == 422
    assert "expected 'and', 'or' or the end, found '(' at position 12" in refused_rollout.text


def test_diagnostics_of_an_agent_and_the_gateway_and_a_timeout(
    served: tuple[ApiClient, Site],
) -> None:
    api, _site = served
    operator = api.as_role("operator")
    answer = api.post("/api/devices/site1/cam1/diagnostics", json={"lines": 5}, headers=operator)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert 0 < len(data["logs"]) <= 5 and data["settings"]["device"] == "cam1"
    assert set(data["outbox"]) == {"depth", "total", "counters"}
    gateway = api.post("/api/devices/site1/gateway/diagnostics", json={}, headers=operator)
    assert gateway.status_code == 200, gateway.text
    assert set(gateway.json()["data"]["outbox"]) == {"uplink", "downlink"}
    ghost = api.post("/api/devices/site1/ghost/diagnostics", json={}, headers=operator)
    assert ghost.status_code == 504
    assert "site1/ghost did not answer diagnostics within 3 s" in ghost.json()["detail"]
    viewer = api.post("/api/devices/site1/cam1/diagnostics", json={})
    assert viewer.status_code == 403


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"tags": "zone:north and (", "settings": {}}, "at position 17"),
        ({"tags": "zone:north &", "settings": {}}, "unexpected character '&' at position 12"),
        ({"site": "site1", "settings": {"escalation": {"colour": 1}}}, "escalation.colour is not"),
        ({"site": "site1", "settings": {"escalation": {"threshold": 2}}}, "escalation.threshold"),
        ({"site": "site1", "settings": {"model": "x.tflite"}}, "model cannot change"),
        ({"settings": {}}, "name a site, a tag expression"),
        ({"devices": ["cam1"], "settings": {}}, "a device list needs the site"),
    ],
)
def test_bad_config_requests_are_422_with_the_reason(
    client: ApiClient, body: dict[str, Any], reason: str
) -> None:
    answer = client.post("/api/config", json=body, headers=client.as_role("operator"))
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]


def test_bad_tags_are_422_and_the_viewer_cannot_tag(client: ApiClient) -> None:
    operator = client.as_role("operator")
    bad = client.put("/api/devices/s1/cam1/tags", json={"tags": ["a b"]}, headers=operator)
    assert bad.status_code == 422 and "tag 'a b' is not valid" in bad.json()["detail"]
    assert client.put("/api/devices/s1/cam1/tags", json={"tags": ["x"]}).status_code == 403
    good = client.put("/api/devices/s1/cam1/tags", json={"tags": ["b", "a", "b"]}, headers=operator)
    assert good.json() == {"site": "s1", "device": "cam1", "tags": ["a", "b"]}
    assert client.get("/api/devices/s1/cam1/config").status_code == 404  # never heard from
    assert (
        client.post("/api/devices/s1/cam1/diagnostics", json={}, headers=operator).status_code
        == 503
    )


def test_provisioned_tags_are_adopted_unless_an_operator_set_some(client: ApiClient) -> None:
    writer = StoreWriter(client.services.engine, client.services.blobs)
    operator = client.as_role("operator")
    assert client.put("/api/devices/s1/cam2/tags", json={"tags": ["ops"]}, headers=operator)
    states = [
        inbound("s1", device, Kind.STATE, make_state().model_copy(update={"tags": ["zone:north"]}))
        for device in ("cam1", "cam2")
    ]
    writer.write(states)
    with client.services.sessions() as session:
        assert tags_of(session, "s1", "cam1") == ["zone:north"]  # adopted from its state
        assert tags_of(session, "s1", "cam2") == ["ops"]  # the operator's tags win
