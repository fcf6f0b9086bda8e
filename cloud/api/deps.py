"""Request dependencies, as ``Annotated`` aliases: ``def handler(session: SessionDep)``.

Authentication: ``Authorization: Bearer <token>`` (:mod:`cloud.auth`). Routers declare the role
they need once, ``APIRouter(dependencies=[Depends(require("viewer"))])``; a handler that needs
to know who calls takes :data:`PrincipalDep`-style aliases (``Viewer``, ``Operator``, ``Admin``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from edgecascade.cloud.auth import Principal, Role, authenticate
from edgecascade.cloud.services import Services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.fields import MESSAGE_ID_PATTERN, NO_NUL
from edgecascade.shared.topics import ID_PATTERN

# Parameters that name something: an id is a safe topic level (no '/', '+', '#', NUL, at most 64
# characters), free text has no NUL (PostgreSQL refuses it: a 500 instead of a clear 422).
ID = ID_PATTERN
TEXT = NO_NUL
MESSAGE_ID = MESSAGE_ID_PATTERN
MAX_OFFSET = 2**62  # beyond it PostgreSQL's BIGINT overflows

bearer = HTTPBearer(auto_error=False, description="An API token: `edgecascade cloud token create`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


def get_settings(services: ServicesDep) -> CloudSettings:
    return services.settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[CloudSettings, Depends(get_settings)]


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that lets through callers whose token has at least ``role``."""

    def check(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        if credentials is None:
            if role == "viewer" and services.settings.api.anonymous_read:
                return Principal("anonymous", "viewer")
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an API token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with services.sessions() as session:
            principal = authenticate(session, credentials.credentials)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the API token is not valid or was revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.may(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"token {principal.name!r} has role {principal.role}; this needs {role}",
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def scope_filters(
    entity: Any, site: str | None, device: str | None, since: float | None, until: float | None
) -> list[ColumnElement[bool]]:
    """The site, device and captured-at window filters that result-like lists share."""
    where: list[ColumnElement[bool]] = []
    if site is not None:
        where.append(entity.site_id == site)
    if device is not None:
        where.append(entity.device_id == device)
    if since is not None:
        where.append(entity.captured_at >= since)
    if until is not None:
        where.append(entity.captured_at < until)
    return where
