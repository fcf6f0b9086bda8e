"""A site for the browser camera: a site broker with the deployment's password file and ACL, a TCP
listener and a websockets listener (Mosquitto 2.0 starts the websockets one only beside a plain
one), a provisioned device, a gateway user and a test user who reads and writes the whole site;
and a fake camera film made from the repository's Fashion-MNIST evaluation images."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.camera.video import images_in, write_y4m
from edgecascade.conformance.site import site_config
from edgecascade.deploy.mosquitto import (
    AclBlock,
    device_acl,
    device_username,
    gateway_acl,
    new_password,
    site_filter,
)
from edgecascade.deploy.provision import BrokerFiles
from edgecascade.gateway.forwarder import Gateway
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.config import MqttSettings
from tests.utils.mqtt import wait_until
from tests.utils.paths import EDGE_MODEL_FP32, EVAL_SAMPLE

SITE, DEVICE, GATEWAY = "site1", "cam1", "gateway"
TESTER = "camera-test"
MODELS = "camera-models"  # answers chunk requests (tests/utils/model_server.py)
MODEL = EDGE_MODEL_FP32  # the page needs a float-input model


@dataclass(frozen=True)
class WsSite:
    """The site broker and who may use it."""

    broker: MosquittoBroker
    ws_url: str
    passwords: dict[str, str]  # user name -> password

    def mqtt(self, username: str) -> MqttSettings:
        """Settings of ``username`` on the TCP listener."""
        return MqttSettings(
            host="127.0.0.1",
            port=self.broker.port,
            username=username,
            password=SecretStr(self.passwords[username]),
            reconnect_min=0.2,
            reconnect_max=1.0,
        )

    def page_query(self, **extra: str) -> dict[str, str]:
        """The camera page's settings for the provisioned device."""
        username = device_username(SITE, DEVICE)
        return {
            "ws": self.ws_url,
            "site": SITE,
            "device": DEVICE,
            "username": username,
            "password": self.passwords[username],
            "gateway": GATEWAY,
            **extra,
        }


def ws_site(workdir: Path) -> WsSite:
    """A site broker (not started) as ``deploy/mosquitto/site.conf`` sets up users and ACLs."""
    files = BrokerFiles(workdir / "auth")
    files.directory.mkdir(parents=True, exist_ok=True)
    passwords = {}
    for block in (
        device_acl(SITE, DEVICE, GATEWAY),
        gateway_acl(SITE, GATEWAY),
        AclBlock(TESTER, "camera tests", (("readwrite", site_filter(SITE)),)),
        AclBlock(MODELS, "model server", (("readwrite", "ec/#"),)),
    ):
        passwords[block.username] = new_password()
        files.add(block, passwords[block.username])
    port, ws_port = free_port(), free_port()
    config = site_config(workdir / "broker", "127.0.0.1", port, ws_port, files)
    broker = MosquittoBroker(workdir / "broker", port=port, config=config)
    return WsSite(broker, f"ws://127.0.0.1:{ws_port}/", passwords)


def fashion_film(out: Path) -> Path:
    """20 of the evaluation images (two of each class) as a Y4M film, each held for half a
    second at 10 fps."""
    return write_y4m(images_in(EVAL_SAMPLE, limit=20), out)


@contextmanager
def running_gateway(site: WsSite, cloud: MosquittoBroker, data_dir: Path) -> Iterator[Gateway]:
    """The site's real gateway, in a thread, between the site broker and ``cloud``."""
    settings = GatewaySettings.model_validate(
        {
            "site": SITE,
            "gateway_id": GATEWAY,
            "data_dir": data_dir,
            "site_mqtt": site.mqtt(device_username(SITE, GATEWAY)),
            "cloud_mqtt": cloud.settings,
            "batch": {"linger_ms": 50},
        }
    )
    gateway = Gateway(settings)
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: gateway.site_link.connected)
        yield gateway
    finally:
        stop.set()
        thread.join(timeout=20)
