"""The deployment as docs/DEPLOYMENT.md installs it, under a temporary root instead of ``/``.

A broker runs the committed ``deploy/mosquitto/<role>.conf`` with only its absolute paths moved
under the root and its listeners on free loopback ports; certificates come from
``edgecascade deploy pki``, users and ACL entries from ``edgecascade deploy provision-*``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.deploy.pki import ensure_ca, issue
from edgecascade.deploy.provision import BrokerFiles, Endpoint
from edgecascade.processes import environment
from edgecascade.shared.config import ComponentSettings, load_settings
from tests.utils.paths import REPO

S = TypeVar("S", bound=ComponentSettings)
ETC = "/etc/mosquitto/edgecascade/"
VAR = "/var/lib/mosquitto/"


@dataclass
class InstalledBroker:
    """One broker: its files, its TLS endpoint and the process."""

    name: str  # site-broker or cloud-broker: the certificate's name
    etc: Path
    broker: MosquittoBroker
    local_port: int
    ws_port: int = 0  # the site broker's secure websockets listener (browser cameras)

    @property
    def files(self) -> BrokerFiles:
        return BrokerFiles(self.etc)

    def endpoint(self, ca_file: Path) -> Endpoint:
        return Endpoint("127.0.0.1", self.broker.port, ca_file)


def make_pki(directory: Path) -> Path:
    """A CA and both brokers' certificates for 127.0.0.1/localhost; returns the CA file."""
    ca, _ = ensure_ca(directory)
    for name in ("site-broker", "cloud-broker"):
        issue(directory, name, server_hosts=["localhost", "127.0.0.1"])
    return ca.cert


def install_broker(conf: str, name: str, root: Path, pki: Path) -> InstalledBroker:
    """``deploy/mosquitto/<conf>`` installed under ``root`` with ``name``'s certificate: in
    ``conf.d``, included by a main file like Debian's ``/etc/mosquitto/mosquitto.conf``."""
    etc, var = root / ETC.strip("/"), root / VAR.strip("/")
    conf_d = etc.parent / "conf.d"
    for directory in (etc, var, conf_d):
        directory.mkdir(parents=True, exist_ok=True)
    for file in ("ca.crt", f"{name}.crt", f"{name}.key"):
        shutil.copy2(pki / file, etc / file)
    text = (REPO / "deploy" / "mosquitto" / conf).read_text()
    tls_port, local_port, ws_port = free_port(), free_port(), free_port()
    moves = [
        (ETC, f"{etc}/"),
        ("listener 8883\n", f"listener {tls_port} 127.0.0.1\n"),
        ("listener 1883 127.0.0.1\n", f"listener {local_port} 127.0.0.1\n"),
    ]
    if "listener 9001\n" in text:
        moves.append(("listener 9001\n", f"listener {ws_port} 127.0.0.1\n"))
    for old, new in moves:
        assert old in text, f"{conf} no longer has {old!r}: update the install steps"
        text = text.replace(old, new)
    (conf_d / "edgecascade.conf").write_text(text)
    debian_main = f"persistence true\npersistence_location {var}/\ninclude_dir {conf_d}\n"
    broker = MosquittoBroker(root / "run", port=tls_port, config=debian_main)
    return InstalledBroker(name, etc, broker, local_port, ws_port)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines, as systemd's EnvironmentFile= and Compose's env_file read them."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def settings_from_env_file(cls: type[S], path: Path, config: Path | None = None) -> S:
    """What a component started with this environment file (and ``config``) would load."""
    with environment(read_env_file(path)):
        return load_settings(cls, config)


def read_unit(path: Path) -> dict[str, list[str]]:
    """A unit file's settings, every section together: key -> values in order."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings
