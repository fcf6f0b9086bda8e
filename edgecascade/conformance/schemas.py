"""The published JSON Schemas (``docs/contract/schemas/``, generated from the same models by
:func:`shared.asyncapi.message_schemas`) applied to what the agent sent, beside the pydantic
models: an agent in another language is written against the schemas, so they must accept it too.

Needs ``jsonschema`` (the ``dev`` extra); without it only the models check (and the detail says so).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from edgecascade.conformance.recorder import Seen
from edgecascade.shared.contract import Encoding, spec_for


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    from edgecascade.shared.asyncapi import message_schemas

    return message_schemas()


def available() -> bool:
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


def validated() -> str:
    """What the checks validated payloads against."""
    return "models and JSON Schemas" if available() else "models; jsonschema not installed"


def schema_problem(seen: Seen) -> str | None:
    """What the published JSON Schema of the message's row finds wrong with it (None: nothing,
    or a binary kind, or no ``jsonschema``)."""
    if seen.topic is None or not available():
        return None
    import jsonschema

    spec = spec_for(seen.topic)
    if spec.encoding is not Encoding.JSON:
        return None
    try:
        document = json.loads(seen.message.payload)
    except ValueError as exc:
        return f"not JSON: {exc}"
    errors = list(
        jsonschema.Draft202012Validator(_schemas()[spec.model.__name__]).iter_errors(document)
    )
    if not errors:
        return None
    first = min(errors, key=lambda e: list(e.absolute_path))
    where = "/".join(str(p) for p in first.absolute_path) or "payload"
    return f"{spec.model.__name__} JSON Schema: {where}: {first.message[:200]}"
