"""``edgecascade contract export --out DIR``: the MQTT contract as documents.

Writes ``DIR/asyncapi.json`` (AsyncAPI 3.0) and ``DIR/schemas/<Message>.json`` (one JSON Schema per
message), generated from the contract table and the message models
(:mod:`shared.asyncapi`). The committed copy is ``docs/contract/``; a test fails when it is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecascade.shared.cli import SubParsers


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "contract",
        help="the MQTT contract as an AsyncAPI document and JSON Schemas",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="contract_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write asyncapi.json and schemas/*.json",
        description="Write DIR/asyncapi.json and DIR/schemas/<Message>.json.",
    )
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    export.set_defaults(func=run_export)


def export(out: Path) -> list[Path]:
    """Write the documents under ``out``; the files written."""
    from edgecascade.shared.asyncapi import asyncapi_document, dumps, message_schemas

    schemas = out / "schemas"
    schemas.mkdir(parents=True, exist_ok=True)
    for stale in schemas.glob("*.json"):
        stale.unlink()
    written = [out / "asyncapi.json"]
    written[0].write_text(dumps(asyncapi_document()))
    for name, schema in message_schemas().items():
        path = schemas / f"{name}.json"
        path.write_text(dumps(schema))
        written.append(path)
    return written


def run_export(args: argparse.Namespace) -> int:
    written = export(args.out)
    sys.stdout.write(f"wrote {len(written)} files under {args.out}\n")
    return 0
