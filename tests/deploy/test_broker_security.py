"""The committed broker configurations on a real Mosquitto: passwords, per-device ACLs, TLS.

The site and cloud brokers run deploy/mosquitto/site.conf and cloud.conf (paths and ports moved,
nothing else changed) with certificates from ``edgecascade deploy pki`` and users from
``edgecascade deploy provision-*``; every client connects with the settings its provisioned
environment file gives it, over TLS. A device publishes only under its own topics and reads only
its own commands; a gateway sees only its site; a wrong CA, a wrong password or plain TCP fail.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgecascade.cli import main
from edgecascade.cloud.settings import CloudSettings
from edgecascade.deploy.pki import ensure_ca
from edgecascade.deploy.provision import provision_cloud, provision_device, provision_gateway
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import BrokerError, ConfigError
from edgecascade.shared.mqtt import MqttLink, Outgoing
from edgecascade.shared.topics import Kind, ModelSub, shared_filter, topic, topic_filter
from tests.deploy.installed import InstalledBroker, install_broker, make_pki
from tests.deploy.installed import settings_from_env_file as from_env
from tests.utils.mqtt import Collector, wait_until

CAMERAS = ("cam1", "cam2")


@dataclass
class Fleet:
    """Two provisioned cameras and a gateway on site1, the cloud services, both brokers."""

    site: InstalledBroker
    cloud: InstalledBroker
    cams: dict[str, MqttSettings]
    gateway_site: MqttSettings
    gateway_cloud: MqttSettings
    cloud_services: MqttSettings
    ca_file: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("deploy")
    ca = make_pki(root / "pki")
    site = install_broker("site.conf", "site-broker", root / "site", root / "pki")
    cloud = install_broker("cloud.conf", "cloud-broker", root / "cloud", root / "pki")
    envs = root / "env"
    cams = {}
    for cam in CAMERAS:
        env = provision_device("site1", cam, site.files, site.endpoint(ca), envs / cam)
        cams[cam] = from_env(AgentSettings, env).mqtt
    env = provision_gateway(
        "site1", site.files, site.endpoint(ca), cloud.files, cloud.endpoint(ca), envs / "gateway"
    )
    gateway = from_env(GatewaySettings, env)
    cloud_env = provision_cloud(cloud.files, cloud.endpoint(ca), envs / "cloud")
    with site.broker, cloud.broker:
        yield Fleet(
            site,
            cloud,
            cams,
            gateway.site_mqtt,
            gateway.cloud_mqtt,
            from_env(CloudSettings, cloud_env).mqtt,
            ca,
        )


def fast(settings: MqttSettings, **changes: object) -> MqttSettings:
    values = {**settings.model_dump(), "reconnect_min": 0.2, "reconnect_max": 1.0, **changes}
    return MqttSettings.model_validate(values)


def link(settings: MqttSettings, client_id: str) -> MqttLink:
    connected = MqttLink(fast(settings), client_id, persistent=False)
    connected.connect()
    return connected


def publish(settings: MqttSettings, client_id: str, *messages: tuple[str, bytes]) -> list[str]:
    """Publish one by one, each on a new connection, waiting for each PUBACK; returns the
    broker's refusals. (Mosquitto 2.0 answers a denied QoS 1 publish with PUBACK "Not
    authorized", then closes the connection.)"""
    refused = []
    for wire_topic, payload in messages:
        sender = link(settings, client_id)
        try:
            assert sender.confirm(sender.publish(Outgoing(wire_topic, payload)), 10)
        except BrokerError as exc:
            refused.append(str(exc))
        finally:
            sender.stop()
    return refused


def test_a_device_publishes_only_under_its_own_topics(fleet: Fleet) -> None:
    own, forged = topic("site1", "cam1", Kind.RESULT), topic("site1", "cam2", Kind.RESULT)
    forged_state = topic("site1", "cam2", Kind.STATE)
    with Collector(fast(fleet.gateway_site), "ec/v1/site1/#", client_id="gw") as gateway:
        refused = publish(
            fleet.cams["cam1"], "cam1", (forged, b"forged"), (forged_state, b"x"), (own, b"own")
        )
        # The forged ones were refused (PUBACK) before "own" was sent, on the same path: once
        # "own" is here, a forged one would have come before it. Dropped, not delayed.
        assert wait_until(lambda: b"own" in [m.payload for m in gateway.messages], timeout=10)
        assert [m.topic for m in gateway.messages] == [own]
    assert len(refused) == 2 and all("Not authorized" in r for r in refused), refused


def test_a_device_cannot_send_what_only_the_gateway_and_cloud_send(fleet: Fleet) -> None:
    """Model offers, verdicts and commands come from upstream: a camera may not publish them,
    not even addressed to itself (a forged offer or verdict would steer it or its neighbours)."""
    downlink = [
        topic("site1", "cam1", Kind.MODEL, ModelSub.OFFER),
        topic("site1", "cam2", Kind.MODEL, ModelSub.OFFER),
        topic("site1", "cam1", Kind.VERDICT),
        topic("site1", "cam2", Kind.VERDICT),
        topic("site1", "cam1", Kind.CMD, "resync"),
        topic("site1", "cam2", Kind.CMD, "resync"),
    ]
    own = topic("site1", "cam1", Kind.RESULT)
    with Collector(fast(fleet.gateway_site), "ec/v1/site1/#", client_id="gw") as gateway:
        refused = publish(
            fleet.cams["cam1"], "cam1", *[(t, b"forged") for t in downlink], (own, b"own")
        )
        # "own" went last: any forged one would have arrived before it.
        assert wait_until(lambda: b"own" in [m.payload for m in gateway.messages], timeout=10)
        assert [m.topic for m in gateway.messages] == [own]
    assert len(refused) == len(downlink) and all("Not authorized" in r for r in refused), refused


def test_a_device_reads_only_its_own_commands_and_verdicts(fleet: Fleet) -> None:
    nosy_filters = (
        "ec/v1/#",
        topic_filter(Kind.CMD, site="site1", device="cam2"),
        topic("site1", "cam2", Kind.VERDICT),
    )
    with (
        Collector(fast(fleet.cams["cam1"]), *nosy_filters, client_id="cam1") as cam1,
        Collector(
            fast(fleet.cams["cam2"]),
            topic_filter(Kind.CMD, site="site1", device="cam2"),
            client_id="cam2",
        ) as cam2,
    ):
        cam1.link.subscribe(topic_filter(Kind.CMD, site="site1", device="cam1"))
        verdict1 = topic("site1", "cam1", Kind.VERDICT)
        cam1.link.subscribe(verdict1)
        probe_until_received(fleet.gateway_site, cam1, verdict1)  # the nosy filters are active
        for_cam2 = topic("site1", "cam2", Kind.CMD, "resync")
        for_cam1 = topic("site1", "cam1", Kind.CMD, "resync")
        verdict2 = topic("site1", "cam2", Kind.VERDICT)
        refused = publish(
            fleet.gateway_site, "gateway", (for_cam2, b"2"), (verdict2, b"v2"), (for_cam1, b"1")
        )
        assert refused == []
        assert wait_until(lambda: [m.topic for m in cam2.messages] == [for_cam2], timeout=10)
        # for_cam1 went last: what cam1 must not read would have arrived before it.
        assert wait_until(lambda: any(m.topic == for_cam1 for m in cam1.messages), timeout=10)
        # (its own once per matching subscription: "ec/v1/#" and its own cmd/+)
        assert {m.topic for m in cam1.messages} == {verdict1, for_cam1}


def test_a_device_cannot_take_over_another_devices_session(fleet: Fleet) -> None:
    cam2 = link(fleet.cams["cam2"], "site1.cam2")
    try:
        # cam1 asks for cam2's client id; the broker uses cam1's user name instead.
        impostor = link(fleet.cams["cam1"], "site1.cam2")
        # A takeover happens when the broker takes the impostor's CONNECT, before its CONNACK.
        # A PUBACK asked for afterwards on each connection shows both are still the first ones.
        for device, client in (("cam2", cam2), ("cam1", impostor)):
            own = Outgoing(topic("site1", device, Kind.STATE), b"still here")
            assert client.confirm(client.publish(own), 10), device
        assert cam2.connected and cam2.connects == 1
        assert impostor.connected and impostor.connects == 1
        impostor.stop()
    finally:
        cam2.stop()


def probe_until_received(settings: MqttSettings, collector: Collector, probe: str) -> None:
    """Publish on ``probe`` until ``collector`` receives it: its subscriptions are then active."""
    for _ in range(20):
        publish(settings, "prober", (probe, b"probe"))
        if wait_until(lambda: any(m.topic == probe for m in collector.messages), timeout=0.5):
            return
    raise AssertionError(f"no probe on {probe} arrived")


def test_a_gateway_sees_only_its_site_on_the_cloud_broker(fleet: Fleet) -> None:
    services = fast(fleet.cloud_services)
    escalations = shared_filter("reinfer", topic_filter(Kind.ESCALATION))
    with Collector(services, escalations, "ec/v1/+/+/result", client_id="ingest") as cloud:
        refused = publish(
            fleet.gateway_cloud,
            "gw",
            (topic("site2", "cam1", Kind.RESULT), b"x"),
            (topic("site1", "cam1", Kind.ESCALATION), b"frame"),
        )
        assert len(refused) == 1 and "Not authorized" in refused[0]
        assert wait_until(lambda: [m.payload for m in cloud.messages] == [b"frame"], timeout=10)
    with Collector(fast(fleet.gateway_cloud), "ec/v1/#", client_id="gw") as gateway:
        publish(
            services,
            "cloud-pub",
            (topic("site2", "cam1", Kind.VERDICT), b"other"),
            (topic("site1", "cam1", Kind.VERDICT), b"ours"),
        )
        assert wait_until(lambda: [m.payload for m in gateway.messages] == [b"ours"], timeout=10)


def test_tls_needs_the_private_ca(fleet: Fleet, tmp_path: Path) -> None:
    cam = fleet.cams["cam1"]
    assert cam.uses_tls and cam.ca_file == fleet.ca_file
    link(cam, "cam1").stop()  # the right CA connects (every test above did too)
    other_ca, _ = ensure_ca(tmp_path / "other")
    with pytest.raises(BrokerError, match="certificate verify failed"):
        MqttLink(fast(cam, ca_file=other_ca.cert), "cam1").connect(timeout=3)
    with pytest.raises(BrokerError, match="within"):  # plain MQTT on the TLS port
        MqttLink(fast(cam, tls=False, ca_file=None), "cam1").connect(timeout=3)


def test_wrong_password_and_anonymous_are_refused(fleet: Fleet) -> None:
    cam = fleet.cams["cam1"]
    for username, password in (("site1/cam1", "guess"), (None, None)):
        with pytest.raises(BrokerError):
            MqttLink(fast(cam, username=username, password=password), "x").connect(timeout=3)


def test_the_size_limit_is_enforced(fleet: Fleet) -> None:
    own = topic("site1", "cam1", Kind.ESCALATION)
    with Collector(fast(fleet.gateway_site), own, client_id="gw") as gateway:
        sender = link(fleet.cams["cam1"], "cam1")
        try:
            too_big = b"x" * (4 * 1024 * 1024 + 1)  # the site broker's message_size_limit + 1
            # Mosquitto 2.0 drops the connection instead of acknowledging it, on every retry.
            assert not sender.confirm(sender.publish(Outgoing(own, too_big)), 3)
        finally:
            sender.stop()
        assert publish(fleet.cams["cam1"], "cam1", (own, b"small")) == []
        assert wait_until(lambda: [m.payload for m in gateway.messages] == [b"small"], timeout=10)


def test_unusable_tls_settings_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.crt"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        MqttLink(MqttSettings(ca_file=missing), "x")
    not_a_key = tmp_path / "client.key"
    not_a_key.write_text("not a key")
    with pytest.raises(ConfigError, match=re.escape(str(not_a_key))):
        MqttLink(MqttSettings(tls=True, cert_file=not_a_key, key_file=not_a_key), "x")
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        MqttSettings(cert_file=not_a_key)


def test_a_device_added_then_revoked_with_a_reload(fleet: Fleet, tmp_path: Path) -> None:
    """What the guide does for a new camera and a stolen one: provision or revoke, reload."""
    site = fleet.site
    env = provision_device("site1", "cam9", site.files, site.endpoint(fleet.ca_file), tmp_path)
    cam9 = from_env(AgentSettings, env).mqtt
    assert site.broker.proc is not None
    site.broker.proc.send_signal(signal.SIGHUP)  # systemctl reload mosquitto
    assert wait_until(lambda: _connects(cam9), timeout=10)
    assert main(["deploy", "revoke", "site1/cam9", "--broker-dir", str(site.etc)]) == 0
    site.broker.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: not _connects(cam9), timeout=10)
    assert _connects(fleet.cams["cam1"])  # the others are untouched


def _connects(settings: MqttSettings) -> bool:
    try:
        link(settings, "probe").stop()
    except BrokerError:
        return False
    return True
