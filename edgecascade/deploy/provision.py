"""Provisioning one identity: its broker credentials and ACL entry, and its environment file.

Each role gets a random password, a line in the broker's password file, a block in its ACL file
(:mod:`edgecascade.deploy.mosquitto`) and ``<role>.env``: the identity and the broker connection
as ``EC_*`` variables (mode 0600), which systemd reads with ``EnvironmentFile=`` and Docker
Compose with ``env_file:``. The environment sits above the TOML file in the settings'
precedence, so the same ``agent.toml`` serves every camera and the env file makes it this one.
What is written is validated by the component's own settings class first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgecascade.deploy.errors import DeployError
from edgecascade.deploy.files import write_file
from edgecascade.deploy.mosquitto import (
    AclBlock,
    cloud_acl,
    device_acl,
    gateway_acl,
    new_password,
    set_acl,
    set_password,
)

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._/:@+=,-]*$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A broker as the provisioned machine reaches it."""

    host: str
    port: int
    ca_file: Path | None = None  # None: plain TCP (a closed network only)

    def settings(self, username: str, password: str, prefix: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "prefix": prefix,
            "username": username,
            "password": password,
        }
        if self.ca_file is not None:
            values |= {"tls": True, "ca_file": str(self.ca_file)}
        return values


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """A broker's password and ACL files (``<dir>/passwd``, ``<dir>/acl``)."""

    directory: Path

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    def add(self, block: AclBlock, password: str) -> None:
        set_password(self.passwd, block.username, password)
        set_acl(self.acl, block)


def provision_device(
    site: str,
    device: str,
    broker: BrokerFiles,
    endpoint: Endpoint,
    out: Path,
    *,
    gateway_id: str = "gateway",
    prefix: str = "ec",
    tags: Sequence[str] = (),
) -> Path:
    """A camera on the site broker; writes ``out/agent.env`` (with its ``tags``, which its state
    reports and the cloud adopts)."""
    from edgecascade.edge_agent.settings import AgentSettings

    block = device_acl(site, device, gateway_id, prefix)
    password = new_password()
    values = {
        "site": site,
        "device": device,
        "gateway_id": gateway_id,
        "mqtt": endpoint.settings(block.username, password, prefix),
    }
    if tags:
        values["tags"] = ",".join(tags)
    env = _render_env(AgentSettings, values, "EC_AGENT_")
    broker.add(block, password)
    return write_file(out / "agent.env", env, mode=0o600)


def provision_gateway(
    site: str,
    site_broker: BrokerFiles,
    site_endpoint: Endpoint,
    cloud_broker: BrokerFiles,
    cloud_endpoint: Endpoint,
    out: Path,
    *,
    gateway_id: str = "gateway",
    prefix: str = "ec",
) -> Path:
    """A site gateway on both brokers (one password each); writes ``out/gateway.env``."""
    from edgecascade.gateway.settings import GatewaySettings

    block = gateway_acl(site, gateway_id, prefix)
    site_password, cloud_password = new_password(), new_password()
    values = {
        "site": site,
        "gateway_id": gateway_id,
        "site_mqtt": site_endpoint.settings(block.username, site_password, prefix),
        "cloud_mqtt": cloud_endpoint.settings(block.username, cloud_password, prefix),
    }
    env = _render_env(GatewaySettings, values, "EC_GATEWAY_")
    site_broker.add(block, site_password)
    cloud_broker.add(block, cloud_password)
    return write_file(out / "gateway.env", env, mode=0o600)


def provision_cloud(
    broker: BrokerFiles,
    endpoint: Endpoint,
    out: Path,
    *,
    username: str = "cloud",
    prefix: str = "ec",
) -> Path:
    """The cloud services (API, ingest, workers share it); writes ``out/cloud.env``."""
    from edgecascade.cloud.settings import CloudSettings

    block = cloud_acl(username, prefix)
    password = new_password()
    values = {"mqtt": endpoint.settings(username, password, prefix)}
    env = _render_env(CloudSettings, values, "EC_CLOUD_")
    broker.add(block, password)
    return write_file(out / "cloud.env", env, mode=0o600)


def _render_env(cls: type[BaseModel], values: dict[str, Any], env_prefix: str) -> str:
    """``values`` as ``EC_*`` lines, after ``cls`` has accepted them."""
    try:
        cls.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err['input']!r})"
            for err in exc.errors(include_url=False)
        )
        raise DeployError(f"these values would not load as {cls.__name__}: {problems}") from exc
    lines = ["# Written by `edgecascade deploy`; keep it private (mode 0600)."]
    for key, value in _flatten(values):
        name = env_prefix + key.upper()
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not _SAFE_VALUE.fullmatch(text):
            raise DeployError(f"{name}: value {text!r} has characters an env file cannot hold")
        lines.append(f"{name}={text}")
    return "\n".join(lines) + "\n"


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}__")
        else:
            items.append((f"{prefix}{key}", value))
    return items
