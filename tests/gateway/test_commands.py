"""Commands through the gateway (two real brokers): the cloud reaches a device's agent only
through its site gateway, and the reply comes back up; the gateway answers its own diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.settings import SourceSettings
from edgecascade.shared.codec import decode, encode
from edgecascade.shared.diagnostics import REDACTED
from edgecascade.shared.messages import CommandMessage, ReplyMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, Topic, topic
from tests.gateway.conftest import SITE, StartGateway
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.factories import make_result
from tests.utils.mqtt import Collector, publish_all, wait_until
from tests.utils.paths import sample_subset

Brokers = tuple[MosquittoBroker, MosquittoBroker]


def replies(collector: Collector) -> dict[str, ReplyMessage]:
    out = {}
    for m in collector.messages:
        message = decode(Topic.parse(m.topic), m.payload).message
        if isinstance(message, ReplyMessage):
            out[message.correlation] = message
    return out


def command(cloud: MosquittoBroker, device: str, name: str, args: dict[str, int]) -> str:
    message = CommandMessage(correlation=make_result().msg_id, args=dict(args))
    wire = Outgoing(topic(SITE, device, Kind.CMD, name), encode(message))
    publish_all(cloud.settings, [wire], client_id=f"operator-{name}-{device}")
    return message.correlation


def test_diagnostics_of_a_device_and_of_the_gateway_round_trip(
    brokers: Brokers, start_gateway: StartGateway, tmp_path: Path
) -> None:
    site, cloud = brokers
    gw = start_gateway(
        cloud_mqtt={**cloud.settings.model_dump(), "username": "gw", "password": "s3cret"}
    )
    sample_subset(tmp_path / "frames", per_class=1)
    settings = agent_settings(
        site,
        tmp_path / "agent",
        SourceSettings(path=tmp_path / "frames", fps=10, loop=True),
        site=SITE,
        gateway_id="gateway",
    )
    agent = RunningAgent(settings)
    try:
        with Collector(cloud.settings, "ec/v1/+/+/reply/#", client_id="cloud") as collector:
            assert wait_until(agent.agent.gateway_online.is_set)
            to_device = command(cloud, "cam1", "diagnostics", {"lines": 3})
            to_gateway = command(cloud, "gateway", "diagnostics", {"lines": 3})
            assert wait_until(lambda: {to_device, to_gateway} <= set(replies(collector)))
            device, own = replies(collector)[to_device], replies(collector)[to_gateway]
            topics = {Topic.parse(m.topic).device for m in collector.messages}
        assert topics == {"cam1", "gateway"}
        assert device.status == "ok" and own.status == "ok"
        device_data: Any = device.data
        assert device_data["settings"]["device"] == "cam1"
        own_data: Any = own.data
        assert own_data["settings"]["cloud_mqtt"]["password"] == REDACTED
        assert set(own_data["outbox"]) == {"uplink", "downlink"}
        assert gw.gateway.downlinked["cmd.diagnostics"] == 1
    finally:
        agent.close()
