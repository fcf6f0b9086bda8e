"""API tokens and roles.

A token is ``ec_`` + 32 random bytes (URL-safe base64), shown once when it is created; the database
keeps only its sha256, so a leaked database leaks no usable token. (A slow password hash buys
nothing for 256 random bits and would cost every request.) Roles are ordered: a ``viewer`` reads,
an ``operator`` also steers the fleet (rollouts, commands), an ``admin`` also manages tokens and
models. Every write needs a token; reads need one too unless ``api.anonymous_read`` is set.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgecascade.cloud.db.models import ApiToken
from edgecascade.cloud.errors import TokenExists, TokenInvalid, TokenNotFound
from edgecascade.shared.errors import ContractError
from edgecascade.shared.topics import validate_id

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
TOKEN_PREFIX = "ec_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str, role: str) -> str:
    """Store a new token named ``name`` with ``role``; returns the token (shown only now)."""
    try:
        validate_id(name, "token name")
    except ContractError as exc:  # a name the API's pattern lets through: '.', '..'
        raise TokenInvalid(str(exc)) from exc
    if role not in ROLES:
        raise TokenInvalid(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(name=name, role=role, token_sha256=token_digest(token), created_at=time.time())
    )
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise TokenExists(f"a token named {name!r} exists; revoke it or pick another name") from exc
    return token


def revoke_token(session: Session, name: str) -> None:
    row = session.get(ApiToken, name)
    if row is None:
        raise TokenNotFound(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = time.time()
        session.commit()


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal of a valid, unrevoked token (and note when it was used); else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = token_digest(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest))
    if row is None or row.revoked_at is not None or row.role not in ROLES:
        return None
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > 60:  # at most a write a minute
        session.execute(update(ApiToken).where(ApiToken.name == row.name).values(last_used_at=now))
        session.commit()
    role = ROLES[ROLES.index(row.role)]  # the Literal, not the column str
    return Principal(row.name, role)
