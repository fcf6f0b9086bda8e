"""The site the agent under test joins: a site broker provisioned as ``edgecascade deploy`` does
it, a real gateway process, a cloud broker, and the manifest signing keys.

The site broker has a password file and an ACL file written by :mod:`edgecascade.deploy.mosquitto`
(the device may publish and read exactly what its rows of the contract allow), a TCP listener and a
websockets listener (Mosquitto 2.0 needs the plain one for the websockets one to start), and, as
in ``deploy/mosquitto/site.conf``, the user name as client id. The gateway runs without the
signing key: an offer the devices must refuse reaches them, so the device's own verification is
what is tested. The suite confirms what the gateway forwards, as the cloud's ingest does
(:class:`~edgecascade.conformance.cloud.IngestConfirmations`). The cloud broker is a private
anonymous one; the suite is the cloud on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.deploy.mosquitto import (
    AclBlock,
    device_acl,
    device_username,
    gateway_acl,
    new_password,
    site_filter,
)
from edgecascade.deploy.provision import BrokerFiles
from edgecascade.processes import ProcessGroup
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import BrokerError
from edgecascade.shared.manifest import generate_keys, load_private_key

OBSERVER = "conformance-observer"  # the suite's read-only user on the site broker
PROBE = "conformance-probe"  # a second one, for short connections beside it


@dataclass(frozen=True, slots=True)
class SiteIds:
    site: str = "site1"
    device: str = "cam1"
    gateway: str = "gateway"
    prefix: str = "ec"


def site_config(workdir: Path, bind: str, port: int, ws_port: int, files: BrokerFiles) -> str:
    """deploy/mosquitto/site.conf's rules on a private port pair, without TLS (a test site)."""
    return (
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {files.passwd}\n"
        f"acl_file {files.acl}\n"
        f"listener {port} {bind}\n"
        "use_username_as_clientid true\n"
        f"listener {ws_port} {bind}\n"
        "protocol websockets\n"
        "use_username_as_clientid true\n"
        "persistence true\n"
        f"persistence_location {workdir}/\n"
        "autosave_interval 1\n"
        "message_size_limit 4194304\n"
        "max_queued_messages 0\n"
        "max_queued_bytes 268435456\n"
        "max_inflight_messages 100\n"
    )


class Site:
    """Brokers, credentials, keys and the gateway of one conformance run, under ``workdir``."""

    def __init__(
        self, workdir: Path, ids: SiteIds, bind: str = "127.0.0.1", advertise: str | None = None
    ) -> None:
        self.workdir, self.ids, self.bind = workdir, ids, bind
        self.host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
        # What the agent is told to connect to: another machine (a phone) needs this one's
        # address on their network, not the loopback the suite itself uses.
        self.agent_host = advertise or self.host
        files = BrokerFiles(workdir / "site-auth")
        files.directory.mkdir(parents=True, exist_ok=True)
        self.passwords: dict[str, str] = {}
        for block in (
            device_acl(ids.site, ids.device, ids.gateway, ids.prefix),
            gateway_acl(ids.site, ids.gateway, ids.prefix),
            *(
                AclBlock(user, "conformance suite", (("read", site_filter(ids.site, ids.prefix)),))
                for user in (OBSERVER, PROBE)
            ),
        ):
            self.passwords[block.username] = new_password()
            files.add(block, self.passwords[block.username])
        self.ws_port = free_port()
        port = free_port()
        config = site_config(workdir / "site-broker", bind, port, self.ws_port, files)
        self.site_broker = MosquittoBroker(workdir / "site-broker", port, config=config)
        self.cloud_broker = MosquittoBroker(workdir / "cloud-broker")
        self.private_key_path, self.public_key_path = generate_keys(workdir / "keys")
        self.signing_key = load_private_key(self.private_key_path)
        self.group = ProcessGroup(workdir / "logs")

    @property
    def device_user(self) -> str:
        return device_username(self.ids.site, self.ids.device)

    @property
    def ws_url(self) -> str:
        """The websockets URL handed to the agent."""
        return f"ws://{self.agent_host}:{self.ws_port}/"

    def site_settings(self, username: str) -> MqttSettings:
        return MqttSettings(
            host=self.host,
            port=self.site_broker.port,
            username=username,
            password=SecretStr(self.passwords[username]),
            prefix=self.ids.prefix,
            reconnect_min=0.2,
            reconnect_max=1.0,
        )

    @property
    def cloud_settings(self) -> MqttSettings:
        return self.cloud_broker.settings.model_copy(update={"prefix": self.ids.prefix})

    def start(self) -> None:
        self.site_broker.start()
        self.cloud_broker.start()
        self._start_gateway()

    def _start_gateway(self) -> None:
        ids = self.ids
        user = device_username(ids.site, ids.gateway)
        env = {
            "EC_GATEWAY_SITE": ids.site,
            "EC_GATEWAY_GATEWAY_ID": ids.gateway,
            "EC_GATEWAY_DATA_DIR": str(self.workdir / "gateway"),
            "EC_GATEWAY_TELEMETRY_WINDOW_S": "0",  # every telemetry sample reaches the cloud
            "EC_GATEWAY_BATCH__LINGER_MS": "50",
            "EC_GATEWAY_SITE_MQTT__HOST": self.host,
            "EC_GATEWAY_SITE_MQTT__PORT": str(self.site_broker.port),
            "EC_GATEWAY_SITE_MQTT__USERNAME": user,
            "EC_GATEWAY_SITE_MQTT__PASSWORD": self.passwords[user],
            "EC_GATEWAY_SITE_MQTT__PREFIX": ids.prefix,
            "EC_GATEWAY_SITE_MQTT__RECONNECT_MIN": "0.2",
            "EC_GATEWAY_SITE_MQTT__RECONNECT_MAX": "1.0",
            "EC_GATEWAY_CLOUD_MQTT__HOST": "127.0.0.1",
            "EC_GATEWAY_CLOUD_MQTT__PORT": str(self.cloud_broker.port),
            "EC_GATEWAY_CLOUD_MQTT__PREFIX": ids.prefix,
            "EC_GATEWAY_CLOUD_MQTT__RECONNECT_MIN": "0.2",
            "EC_GATEWAY_CLOUD_MQTT__RECONNECT_MAX": "1.0",
        }
        self.group.spawn_cli("gateway", "gateway", env=env)

    def gateway_alive(self) -> None:
        """Raise naming the gateway's last log lines if it has exited."""
        proc = self.group.process("gateway")
        if proc.poll() is not None:
            raise BrokerError(
                f"the gateway exited with {proc.returncode}:\n{self.group.log_tail('gateway')}"
            )

    def stop(self) -> None:
        self.group.stop_all(timeout=10)
        self.site_broker.stop()
        self.cloud_broker.stop()
