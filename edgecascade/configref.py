"""``edgecascade config-reference``: the configuration reference, generated from the settings.

The README's configuration section is this command's output; a test keeps the two equal, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edgecascade.shared.cli import SubParsers


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config-reference",
        help="print every configuration key as Markdown",
        description="Print the configuration reference of agent, gateway and cloud as Markdown.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(reference())
    return 0


def reference() -> str:
    from edgecascade.cloud.settings import CloudSettings
    from edgecascade.edge_agent.settings import AgentSettings
    from edgecascade.gateway.settings import GatewaySettings

    parts = []
    for title, command, cls in (
        ("Agent", "edgecascade agent", AgentSettings),
        ("Gateway", "edgecascade gateway", GatewaySettings),
        ("Cloud", "edgecascade cloud", CloudSettings),
    ):
        prefix = str(cls.model_config.get("env_prefix", ""))
        parts.append(f"### {title} (`{command}`, environment `{prefix}*`)\n\n")
        parts.append("| key | default | description |\n|---|---|---|\n")
        parts.extend(_rows(cls, ""))
        parts.append("\n")
    return "".join(parts)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _nested_model(field)
        if nested is not None:
            rows.extend(_rows(nested, f"{key}."))
            continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_default(field)} | {description} |\n")
        item = _list_item_model(field)
        if item is not None:  # a list of sections (zones): the keys of one entry
            rows.extend(_rows(item, f"{key}[]."))
    return rows


def _list_item_model(field: FieldInfo) -> type[BaseModel] | None:
    if get_origin(field.annotation) is not list:
        return None
    (item,) = get_args(field.annotation)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _default(field: FieldInfo) -> str:
    value: Any = field.default
    if value is PydanticUndefined:
        if field.default_factory is None:
            return "required"
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None:
        return "none"
    return f"`{value}`".replace("|", "\\|")
