"""How the API answers errors that a request causes: one place maps them to status codes.

Domain errors (``cloud/errors.py``) say what went wrong and know nothing of HTTP; routes let them
propagate, and :data:`STATUS` gives each class its code (a class not listed is a server fault: a
500). The body is FastAPI's usual ``{"detail": message}``.

A value the database refuses is a 422 with the database's reason, not a 500. Parameters that name
something are checked by their patterns first (``cloud/api/deps.py``), which name the parameter.
This is the net under everything else a request can carry into a query or a row (free text with
NUL, a number beyond a column's range) on any endpoint, present or future: such a value is the
request's fault, and PostgreSQL's message says what is wrong with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError

from edgecascade.cloud.errors import (
    CloudError,
    EscalationNotFound,
    LabelRejected,
    ModelExists,
    ModelNotFound,
    ModelRejected,
    ModelTooLarge,
    RolloutConflict,
    RolloutInvalid,
    RolloutNotFound,
    SigningKeyUnavailable,
    TokenExists,
    TokenInvalid,
    TokenNotFound,
    TooFewVerdicts,
    TrainingInvalid,
    TrainingNotFound,
)

logger = logging.getLogger(__name__)

# By number: Starlette renamed some of its constants (413, 422) and warns on the old names.
STATUS: dict[type[CloudError], int] = {
    TokenInvalid: 422,
    TokenExists: 409,
    TokenNotFound: 404,
    ModelTooLarge: 413,
    ModelRejected: 422,
    ModelExists: 409,
    ModelNotFound: 404,
    TooFewVerdicts: 422,
    SigningKeyUnavailable: 503,
    RolloutInvalid: 422,
    RolloutNotFound: 404,
    RolloutConflict: 409,
    LabelRejected: 422,
    EscalationNotFound: 404,
    TrainingInvalid: 422,
    TrainingNotFound: 404,
}


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A :class:`CloudError` of :data:`STATUS` as its status code and message."""
    assert isinstance(exc, CloudError)
    code = next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)
    logger.info("%s %s: %d: %s", request.method, request.url.path, code, exc)
    return JSONResponse({"detail": str(exc)}, code)


async def data_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    logger.warning(
        "%s %s: the database refused a value: %s", request.method, request.url.path, reason
    )
    return JSONResponse({"detail": f"a value the database cannot take: {reason}"}, 422)


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


def exception_handlers() -> dict[int | type[Exception], Handler]:
    """For ``FastAPI(exception_handlers=...)``: the domain errors of :data:`STATUS`, and
    :class:`DataError`."""
    handlers: dict[int | type[Exception], Handler] = dict.fromkeys(STATUS, domain_error)
    handlers[DataError] = data_error
    return handlers
