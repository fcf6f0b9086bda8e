"""The contract as documents: an AsyncAPI 3.0 document and one JSON Schema per message.

Built from the same table and models as everything else (:data:`shared.contract.KINDS`,
:mod:`shared.messages`): one channel per row (its address from the topic grammar, its parameters
the prefix, site, device and, for ``cmd``/``reply``, the command name), one message per payload
model with its JSON Schema, QoS and retain as MQTT bindings, and the operations of a camera
device (what it sends, what it receives): what a team writing an agent in another language builds
against. Binary kinds (escalations, model chunks) are described as the frame codec carries them:
the header model's schema and the codec's layout. Pydantic's ``$defs`` become
``components.schemas`` so every reference resolves inside the document.
"""

from __future__ import annotations

import json
from typing import Any

from edgecascade.shared.contract import KINDS, NAME, Encoding, KindSpec, Role
from edgecascade.shared.fields import SCHEMA_VERSION
from edgecascade.shared.topics import VERSION

FRAME_CODEC = (
    "Binary frame codec (shared/framecodec.py): 4 bytes magic 'ECF1', a 4-byte big-endian length "
    "N of the header, N bytes of the header as UTF-8 JSON (the schema named by "
    "x-edgecascade-header), then the body bytes (a JPEG/PNG frame, or a model chunk)."
)
PARAMETERS = {
    "prefix": "Topic prefix of the deployment (default ec).",
    "site": "Site id: 1-64 of A-Z a-z 0-9 . _ - (not . or ..).",
    "device": "Device (or gateway) id, same rules as the site id.",
    "name": "Command name (cmd/reply): same rules as an id.",
}


def _channel_id(spec: KindSpec) -> str:
    level = spec.level or ("name" if spec.sub is NAME else None)
    return f"{spec.kind.value}-{level}" if level else spec.kind.value


def _address(spec: KindSpec) -> str:
    tail = spec.level or ("{name}" if spec.sub is NAME else None)
    base = f"{{prefix}}/{VERSION}/{{site}}/{{device}}/{spec.kind.value}"
    return f"{base}/{tail}" if tail else base


def _rewrite(node: Any) -> Any:
    """Pydantic's local references, pointed at ``components.schemas``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = "#/components/schemas/" + value.removeprefix("#/$defs/")
            else:
                out[key] = _rewrite(value)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def message_schemas() -> dict[str, dict[str, Any]]:
    """Every payload (or frame header) model's JSON Schema, by model name, self-contained."""
    models = {spec.model.__name__: spec.model for spec in KINDS.values()}
    return {name: model.model_json_schema() for name, model in sorted(models.items())}


def asyncapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, schema in message_schemas().items():
        schemas.update(_rewrite(schema.pop("$defs", {})))
        schemas[name] = _rewrite(schema)
    for spec in KINDS.values():
        channel, model = _channel_id(spec), spec.model.__name__
        message: dict[str, Any] = {
            "name": model,
            "title": f"{spec.pattern}: {model}",
            "summary": spec.description,
        }
        if spec.encoding is Encoding.FRAME:
            message["contentType"] = "application/octet-stream"
            message["payload"] = {"type": "string", "format": "binary", "description": FRAME_CODEC}
            message["x-edgecascade-header"] = {"$ref": f"#/components/schemas/{model}"}
        else:
            message["contentType"] = "application/json"
            message["payload"] = {"$ref": f"#/components/schemas/{model}"}
        messages[channel] = message
        params = ["prefix", "site", "device"] + (["name"] if spec.sub is NAME else [])
        channels[channel] = {
            "address": _address(spec),
            "description": spec.description,
            "parameters": {p: {"description": PARAMETERS[p]} for p in params},
            "messages": {model: {"$ref": f"#/components/messages/{channel}"}},
            "x-edgecascade": {
                "direction": spec.direction.value,
                "publishers": sorted(r.value for r in spec.publishers),
                "readers": sorted(r.value for r in spec.readers),
                "max_bytes": spec.limit,
                "stored_by_cloud": spec.stored,
            },
        }
        bindings = {"mqtt": {"qos": spec.qos, "retain": spec.retain, "bindingVersion": "0.2.0"}}
        for action, role_set in (("send", spec.publishers), ("receive", spec.readers)):
            if Role.DEVICE in role_set:
                operations[f"device-{action}-{channel}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "messages": [{"$ref": f"#/channels/{channel}/messages/{model}"}],
                    "bindings": bindings,
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "EdgeCascade MQTT contract",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Messages between camera devices, the site gateway and the cloud over MQTT "
                "(topics <prefix>/v1/<site>/<device>/<kind>[/<sub>]). Operations are a camera "
                "device's. Every message carries schema_version and a UUIDv7 msg_id; delivery "
                "is at-least-once and receivers de-duplicate by msg_id. Generated by "
                "`edgecascade contract export` from shared/contract.py and shared/messages.py."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "site": {
                "host": "site-broker:8883",
                "protocol": "mqtt",
                "description": "The site's Mosquitto; devices talk only to it (TLS, password).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def dumps(document: object) -> str:
    """Stable JSON text (sorted keys), so a contract change is a visible diff."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
