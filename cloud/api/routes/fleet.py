"""Remote configuration, device tags and diagnostics (:mod:`cloud.fleet`).

* ``POST /api/config`` (operator): a new config version for a site, a tag expression or a
  device list; sent right away to the online agents it targets, then kept in step by the fleet
  controller. ``GET /api/config``: the versions, newest first.
* ``GET /api/config/devices``: every agent's desired vs reported version and drift;
  ``GET /api/devices/{site}/{device}/config``: one agent's, with the desired settings.
* ``PUT /api/devices/{site}/{device}/tags`` (operator): replace a device's tags.
* ``POST /api/devices/{site}/{device}/diagnostics`` (operator): the device's or gateway's last log
  lines, settings in force (secrets hidden) and outbox summary; 504 when it does not answer
  within ``fleet.command_timeout_s``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from edgecascade.cloud.api.deps import ID, Operator, ServicesDep, SessionDep, require
from edgecascade.cloud.db.fleet_models import ConfigVersion
from edgecascade.cloud.errors import FleetInvalid
from edgecascade.cloud.fleet.configs import (
    Target,
    add_version,
    fleet_configs,
    set_tags,
)
from edgecascade.cloud.fleet.controller import FleetController
from edgecascade.cloud.fleet.schemas import (
    ConfigIn,
    ConfigList,
    ConfigOut,
    DeviceConfigList,
    DeviceConfigOut,
    DiagnosticsIn,
    DiagnosticsOut,
    TagsIn,
    TagsOut,
)

router = APIRouter(prefix="/api", tags=["fleet"])
viewer = [Depends(require("viewer"))]
SiteId = Annotated[str, Path(pattern=ID)]
DeviceId = Annotated[str, Path(pattern=ID)]


def _invalid(exc: FleetInvalid) -> HTTPException:
    return HTTPException(422, str(exc))  # by number: Starlette renamed the constant


def _fleet(services: ServicesDep) -> FleetController:
    if services.fleet is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "commands need the MQTT link: this process runs without ingest",
        )
    return services.fleet


@router.post("/config", status_code=status.HTTP_201_CREATED)
async def create_config(
    body: ConfigIn, principal: Operator, session: SessionDep, services: ServicesDep
) -> ConfigOut:
    devices = tuple(body.devices) if body.devices is not None else None
    target = Target(body.site, body.tags, devices)
    try:
        row = add_version(session, target, dict(body.settings), principal.name)
    except FleetInvalid as exc:  # a TagSyntaxError too
        raise _invalid(exc) from exc
    out = ConfigOut.model_validate(row)
    if services.fleet is not None:
        await run_in_threadpool(services.fleet.push)
    return out


@router.get("/config", dependencies=viewer)
def list_configs(session: SessionDep) -> ConfigList:
    rows = session.scalars(select(ConfigVersion).order_by(ConfigVersion.version.desc()))
    return ConfigList(items=[ConfigOut.model_validate(row) for row in rows])


@router.get("/config/devices", dependencies=viewer)
def list_device_configs(
    session: SessionDep,
    site: Annotated[str | None, Query(pattern=ID, description="Only agents of this site.")] = None,
) -> DeviceConfigList:
    return DeviceConfigList(items=[DeviceConfigOut.of(c) for c in fleet_configs(session, site)])


@router.get("/devices/{site}/{device}/config", dependencies=viewer)
def device_config(site: SiteId, device: DeviceId, session: SessionDep) -> DeviceConfigOut:
    found = [c for c in fleet_configs(session, site) if c.device == device]
    if not found:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no agent {site}/{device} (heard from with role agent)"
        )
    config = found[0]
    row = session.get(ConfigVersion, config.desired) if config.desired is not None else None
    return DeviceConfigOut.of(config, row.document if row is not None else None)


@router.put("/devices/{site}/{device}/tags")
def put_tags(
    site: SiteId, device: DeviceId, body: TagsIn, principal: Operator, session: SessionDep
) -> TagsOut:
    try:
        tags = set_tags(session, site, device, body.tags)
    except FleetInvalid as exc:
        raise _invalid(exc) from exc
    return TagsOut(site=site, device=device, tags=tags)


@router.post(
    "/devices/{site}/{device}/diagnostics",
    responses={
        502: {"description": "The device or gateway answered with an error."},
        503: {"description": "This process runs without the MQTT link (no ingest)."},
        504: {"description": "No answer within fleet.command_timeout_s."},
    },
)
async def diagnostics(
    site: SiteId, device: DeviceId, body: DiagnosticsIn, principal: Operator, services: ServicesDep
) -> DiagnosticsOut:
    fleet = _fleet(services)
    timeout = services.settings.fleet.command_timeout_s
    reply = await run_in_threadpool(
        fleet.request, site, device, "diagnostics", {"lines": body.lines}, timeout
    )
    if reply is None:
        raise HTTPException(
            status.HTTP_504_GATEWAY_TIMEOUT,
            f"{site}/{device} did not answer diagnostics within {timeout:g} s: is it (and its "
            "site gateway) online?",
        )
    if reply.status == "error":
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"{site}/{device} refused diagnostics: {reply.error}"
        )
    return DiagnosticsOut(site=site, device=device, data=reply.data)
