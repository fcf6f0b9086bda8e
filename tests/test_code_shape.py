"""The size limits of the production code: no module over 400 lines, no function over 60.

A long module or function is where a newcomer loses the thread; the limits keep each file to one
idea and each function to one screen. Exempt, by rule: Alembic migrations (generated, a list of
DDL steps) and argparse builders (a flat list of ``add_argument`` calls reads better long).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.utils.paths import REPO

PACKAGES = ("shared", "edge_agent", "gateway", "cloud", "edgecascade", "modelzoo")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MIGRATIONS = REPO / "cloud" / "migrations"


def is_argparse_builder(name: str) -> bool:
    """``add_parser``, ``add_bench_parser``, ``build_parser``: functions that only declare a CLI."""
    return name == "build_parser" or (name.startswith("add_") and name.endswith("parser"))


def modules() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if not path.is_relative_to(MIGRATIONS):
                yield path


def oversized(source: str, name: str) -> Iterator[str]:
    """What in ``source`` (the module ``name``) is over the limits, one line each."""
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        yield f"{name}: {lines} lines (limit {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        if length > MAX_FUNCTION_LINES and not is_argparse_builder(node.name):
            yield f"{name}::{node.name}: {length} lines (limit {MAX_FUNCTION_LINES})"


def test_no_module_or_function_over_the_limits() -> None:
    found = [
        problem
        for path in modules()
        for problem in oversized(path.read_text(), path.relative_to(REPO).as_posix())
    ]
    assert not found, "over the size limits:\n" + "\n".join(found)


def test_the_rule_names_what_is_over_and_spares_the_exempt() -> None:
    body = "    x = 1\n" * MAX_FUNCTION_LINES  # with its def line: one over
    source = f"def long():\n{body}\ndef add_bench_parser():\n{body}\ndef short():\n    pass\n"
    assert list(oversized(source, "m.py")) == [f"m.py::long: 61 lines (limit {MAX_FUNCTION_LINES})"]
    big_module = "x = 1\n" * (MAX_MODULE_LINES + 1)
    assert list(oversized(big_module, "big.py")) == ["big.py: 401 lines (limit 400)"]
    assert is_argparse_builder("add_parser") and is_argparse_builder("build_parser")
    assert not is_argparse_builder("add_rows")
    assert any(path.is_relative_to(REPO / "edgecascade") for path in modules())
    assert not any(path.is_relative_to(MIGRATIONS) for path in modules())
