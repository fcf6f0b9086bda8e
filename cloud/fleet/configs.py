"""Config versions, device tags, and which version each device should run.

A config version targets a site (every agent of it), a tag expression (fleet-wide, or in one
site) or a device list of one site. A device's desired version is the newest version that
targets it: a later, narrower version overrides a site-wide one for the devices it names, and a
later site-wide one overrides that again. The document is checked against the agent's live
settings schema (:mod:`edge_agent.live`) before it is stored, so a key the agent would refuse, or a
value out of its range, is a 422 here rather than a refusal from every device; the agent checks
again against its own start-up settings and model.

Reported: the version each agent's retained state says it runs (``devices.config_version``);
``config_replies`` keeps each device's newest answer (a refusal's reason). Drift: a desired
version the device does not report.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecascade.cloud.db.fleet_models import ConfigReply, ConfigVersion, DeviceTags
from edgecascade.cloud.db.models import Device
from edgecascade.cloud.errors import FleetInvalid
from edgecascade.cloud.fleet.tags import check_tag, parse
from edgecascade.shared.errors import ConfigError

AGENT = "agent"  # the role of a device that takes a config (gateways do not)


@dataclass(frozen=True, slots=True)
class Target:
    """Which devices a config (or a rollout) is for: ``site`` alone, ``site`` and ``devices``, or
    ``tags`` (with or without ``site``)."""

    site: str | None = None
    tags: str | None = None
    devices: tuple[str, ...] | None = None

    def check(self) -> None:
        """:class:`FleetInvalid` for a target that names nothing or mixes the kinds; a
        :class:`~cloud.fleet.tags.TagSyntaxError` for an expression that does not parse."""
        if self.devices is not None and self.site is None:
            raise FleetInvalid("a device list needs the site it belongs to")
        if self.devices is not None and self.tags is not None:
            raise FleetInvalid("target either a device list or a tag expression, not both")
        if self.devices is not None and not self.devices:
            raise FleetInvalid("the device list is empty")
        if self.site is None and self.tags is None:
            raise FleetInvalid("name a site, a tag expression or a site's device list")
        if self.tags is not None:
            parse(self.tags)

    def matches(self, site: str, device: str, tags: Iterable[str]) -> bool:
        if self.site is not None and site != self.site:
            return False
        if self.devices is not None:
            return device in self.devices
        return self.tags is None or parse(self.tags).matches(frozenset(tags))


def check_document(document: dict[str, Any]) -> None:
    """:class:`FleetInvalid` naming the key and the reason when the agent's live settings
    schema refuses ``document`` (laid over the default settings)."""
    from edgecascade.edge_agent.live import build  # the agent's schema, loaded when needed
    from edgecascade.edge_agent.settings import AgentSettings

    try:
        build(AgentSettings(), 1, document)
    except ConfigError as exc:
        raise FleetInvalid(f"config refused: {exc}") from exc


def target_of(row: ConfigVersion) -> Target:
    devices = tuple(row.devices) if row.devices is not None else None
    return Target(row.site_id, row.tags, devices)


def add_version(
    session: Session, target: Target, document: dict[str, Any], created_by: str
) -> ConfigVersion:
    target.check()
    check_document(document)
    row = ConfigVersion(
        site_id=target.site,
        tags=target.tags,
        devices=list(target.devices) if target.devices is not None else None,
        document=document,
        created_by=created_by,
        created_at=time.time(),
    )
    session.add(row)
    session.commit()
    return row


def set_tags(session: Session, site: str, device: str, tags: Sequence[str]) -> list[str]:
    """Replace a device's tags; :class:`FleetInvalid` naming a bad one."""
    try:
        clean = sorted({check_tag(tag) for tag in tags})
    except ValueError as exc:
        raise FleetInvalid(str(exc)) from exc
    row = session.get(DeviceTags, (site, device))
    if row is None:
        session.add(DeviceTags(site_id=site, device_id=device, tags=clean, updated_at=time.time()))
    else:
        row.tags, row.updated_at = clean, time.time()
    session.commit()
    return clean


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One agent's desired and reported config, and its newest answer."""

    site: str
    device: str
    status: str
    tags: list[str]
    desired: int | None
    reported: int | None
    reply: ConfigReply | None

    @property
    def drift(self) -> bool:
        return self.desired is not None and self.reported != self.desired

    @property
    def refused(self) -> bool:
        """The device refused the version it should run (sending it again will not help)."""
        reply = self.reply
        return reply is not None and reply.status == "error" and reply.version == self.desired


def fleet_configs(conn: Session, site: str | None = None) -> list[DeviceConfig]:
    """Every agent (of ``site``) with its desired version (the newest that targets it)."""
    versions = [
        (row.version, target_of(row))
        for row in conn.execute(select(ConfigVersion).order_by(ConfigVersion.version.desc()))
        .scalars()
        .all()
    ]
    tags = {(t.site_id, t.device_id): list(t.tags) for t in _all(conn, DeviceTags)}
    replies = {(r.site_id, r.device_id): r for r in _all(conn, ConfigReply)}
    stmt = select(Device).where(Device.role == AGENT).order_by(Device.site_id, Device.device_id)
    if site is not None:
        stmt = stmt.where(Device.site_id == site)
    out = []
    for device in conn.execute(stmt).scalars().all():
        key = (device.site_id, device.device_id)
        own = tags.get(key, [])
        desired = next((v for v, t in versions if t.matches(*key, own)), None)
        out.append(
            DeviceConfig(*key, device.status, own, desired, device.config_version, replies.get(key))
        )
    return out


def _all(conn: Session, entity: type[DeviceTags] | type[ConfigReply]) -> list[Any]:
    return list(conn.execute(select(entity)).scalars().all())


def tags_of(session: Session, site: str, device: str) -> list[str]:
    row = session.get(DeviceTags, (site, device))
    return list(row.tags) if row else []
