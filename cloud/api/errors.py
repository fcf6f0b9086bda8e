"""The API's answer to a value the database refuses: 422 with the database's reason, not a 500.

Parameters that name something are checked by their patterns first (``cloud/api/deps.py``), which
name the parameter. This is the net under everything else a request can carry into a query or a
row (free text with NUL, a number beyond a column's range) on any endpoint, present or future:
such a value is the request's fault, and PostgreSQL's message says what is wrong with it.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

logger = logging.getLogger(__name__)


async def data_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    logger.warning(
        "%s %s: the database refused a value: %s", request.method, request.url.path, reason
    )
    return JSONResponse({"detail": f"a value the database cannot take: {reason}"}, 422)
