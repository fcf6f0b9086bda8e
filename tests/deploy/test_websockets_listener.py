"""The committed site broker's secure websockets listener (browser cameras, ``/camera/``): the
same certificate, passwords and ACL as the TLS listener. A provisioned device publishes under
its own topics over ``wss://``; a forged topic and a wrong password are refused there too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from edgecascade.deploy.mosquitto import AclBlock, new_password, site_filter
from edgecascade.deploy.provision import provision_device
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.topics import Kind, topic
from tests.deploy.installed import InstalledBroker, install_broker, make_pki
from tests.deploy.installed import settings_from_env_file as from_env
from tests.utils.mqtt import Collector, wait_until


class WssClient:
    """A paho client over secure websockets, as the page's mqtt.js connects."""

    def __init__(self, port: int, ca: Path, username: str, password: str) -> None:
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, transport="websockets"
        )
        self.client.tls_set(ca_certs=str(ca))
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.port = port

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            self.refused.append(str(rc))
        else:
            self.connected.set()

    def _on_publish(self, _c: object, _u: object, _m: int, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            self.refused.append(str(rc))

    def __enter__(self) -> WssClient:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class WsSite:
    broker: InstalledBroker
    ca: Path
    cam: MqttSettings
    gateway: MqttSettings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WsSite]:
    root = tmp_path_factory.mktemp("wss")
    ca = make_pki(root / "pki")
    broker = install_broker("site.conf", "site-broker", root / "site", root / "pki")
    assert broker.ws_port, "deploy/mosquitto/site.conf has no websockets listener (listener 9001)"
    files, endpoint = broker.files, broker.endpoint(ca)
    cam_env = provision_device("site1", "cam1", files, endpoint, root / "env" / "cam1")
    reader = new_password()
    files.add(AclBlock("reader", "test reader", (("read", site_filter("site1")),)), reader)
    cam = from_env(AgentSettings, cam_env).mqtt
    gateway = MqttSettings(
        port=broker.local_port, username="reader", password=SecretStr(reader), reconnect_min=0.2
    )
    with broker.broker:
        yield WsSite(broker, ca, cam, gateway)


def test_a_device_publishes_over_wss_under_its_own_topics_only(site: WsSite) -> None:
    port, ca = site.broker.ws_port, site.ca
    password = site.cam.password.get_secret_value() if site.cam.password else ""
    own, forged = topic("site1", "cam1", Kind.RESULT), topic("site1", "cam2", Kind.RESULT)
    with Collector(site.gateway, "ec/v1/site1/#", client_id="reader") as seen:
        # Mosquitto 2.0 answers a refused QoS 1 publish with PUBACK "Not authorized" and then
        # closes the connection: each on a connection of its own.
        with WssClient(port, ca, "site1/cam1", password) as wss:
            assert wss.connected.wait(10), wss.refused
            wss.client.publish(forged, b"forged", qos=1).wait_for_publish(10)
        with WssClient(port, ca, "site1/cam1", password) as ok:
            assert ok.connected.wait(10), ok.refused
            ok.client.publish(own, b"own", qos=1).wait_for_publish(10)
        # "own" went last: a forged message let through would have arrived before it.
        assert wait_until(lambda: b"own" in [m.payload for m in seen.messages], timeout=10)
        assert [m.topic for m in seen.messages] == [own]
    assert any("authorized" in r.lower() for r in wss.refused), wss.refused
    with WssClient(port, ca, "site1/cam1", "guess") as bad:
        assert wait_until(lambda: bool(bad.refused), timeout=10)
        assert not bad.connected.is_set()
