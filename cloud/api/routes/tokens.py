"""``/api/tokens``: create, list and revoke API tokens (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from edgecascade.cloud.api.deps import ID, SessionDep, require
from edgecascade.cloud.api.schemas import TokenCreated, TokenIn, TokenList, TokenOut
from edgecascade.cloud.auth import create_token, list_tokens, revoke_token
from edgecascade.cloud.db.models import ApiToken

router = APIRouter(prefix="/api", tags=["tokens"], dependencies=[Depends(require("admin"))])


@router.get("/tokens")
def get_tokens(session: SessionDep) -> TokenList:
    return TokenList(items=[TokenOut.model_validate(row) for row in list_tokens(session)])


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def post_token(body: TokenIn, session: SessionDep) -> TokenCreated:
    token = create_token(session, body.name, body.role)  # TokenExists, TokenInvalid: a 4xx
    row = session.get(ApiToken, body.name)
    assert row is not None
    return TokenCreated.model_validate(
        {**TokenOut.model_validate(row).model_dump(), "token": token}
    )


@router.delete("/tokens/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(
    name: Annotated[str, Path(pattern=ID, description="The token's name.")], session: SessionDep
) -> None:
    revoke_token(session, name)  # TokenNotFound: a 404
