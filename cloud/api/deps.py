"""Request dependencies, as ``Annotated`` aliases: ``def handler(session: SessionDep)``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cloud.services import Services
from cloud.settings import CloudSettings


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
