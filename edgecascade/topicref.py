"""``edgecascade topic-reference``: the README's topic table, generated from the contract table.

The table under the README's "Topics" heading is this command's output; a test keeps the two
equal, so the documented QoS, retain flags, limits and payloads cannot drift from
:data:`shared.contract.KINDS`.
"""

from __future__ import annotations

import argparse
import sys

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.contract import KINDS, Encoding, KindSpec, Role


def add_parser(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topic-reference",
        help="print the topic table of the contract as Markdown",
        description="Print every message kind of the contract (shared/contract.py) as Markdown.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(reference())
    return 0


def reference() -> str:
    lines = [
        "| topic | direction | published by | read by | QoS | retained | limit | payload | what |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(spec) for spec in KINDS.values()]
    return "\n".join(lines) + "\n"


def _row(spec: KindSpec) -> str:
    cells = [
        f"`{spec.pattern}`",
        spec.direction.value,
        _roles(spec.publishers),
        _roles(spec.readers),
        str(spec.qos),
        "yes" if spec.retain else "no",
        _size(spec.limit),
        _payload(spec),
        spec.description.replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def _roles(roles: frozenset[Role]) -> str:
    return ", ".join(role.value for role in Role if role in roles) or "operators"


def _payload(spec: KindSpec) -> str:
    if spec.encoding is Encoding.FRAME:
        return f"frame codec: `{spec.model.__name__}` + bytes"
    return f"`{spec.model.__name__}`"


def _size(limit: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} B"
