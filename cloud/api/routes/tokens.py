"""``/api/tokens``: create, list and revoke API tokens (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from cloud.api.deps import ID, SessionDep, require
from cloud.api.schemas import TokenCreated, TokenIn, TokenList, TokenOut
from cloud.auth import TokenError, create_token, list_tokens, revoke_token
from cloud.db.models import ApiToken
from shared.errors import ContractError

router = APIRouter(prefix="/api", tags=["tokens"], dependencies=[Depends(require("admin"))])


@router.get("/tokens")
def get_tokens(session: SessionDep) -> TokenList:
    return TokenList(items=[TokenOut.model_validate(row) for row in list_tokens(session)])


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def post_token(body: TokenIn, session: SessionDep) -> TokenCreated:
    try:
        token = create_token(session, body.name, body.role)
    except TokenError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ContractError as exc:  # a name the pattern lets through but ids refuse: '.', '..'
        raise HTTPException(422, str(exc)) from None
    row = session.get(ApiToken, body.name)
    assert row is not None
    return TokenCreated.model_validate(
        {**TokenOut.model_validate(row).model_dump(), "token": token}
    )


@router.delete("/tokens/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(
    name: Annotated[str, Path(pattern=ID, description="The token's name.")], session: SessionDep
) -> None:
    try:
        revoke_token(session, name)
    except TokenError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
