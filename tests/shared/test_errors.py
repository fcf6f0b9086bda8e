"""One exception tree: every error class of the code base derives from EdgeCascadeError and is
drawn, under its own parent, in a module docstring; ``shared/errors.py`` names each module that
draws a part of it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from edgecascade.shared import errors as shared_errors
from edgecascade.shared.errors import EdgeCascadeError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "edge_agent", "gateway", "cloud", "edgecascade", "modelzoo")
BRANCH = re.compile(r"[├└]── (\w+)")


def error_classes() -> dict[str, type[BaseException]]:
    """Every class named ``*Error``, or deriving from one, defined in the packages (found in
    the source, so that only the modules defining them are imported)."""
    bases: dict[tuple[str, str], list[str]] = {}  # (module, class) -> its bases' names
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if package != "edgecascade":  # installed under the namespace (pyproject.toml)
                module = f"edgecascade.{module}"
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    bases[(module.removesuffix(".__init__"), node.name)] = [
                        ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases
                    ]
    errors = {key for key in bases if key[1].endswith("Error")}
    while True:
        names = {name for _, name in errors}
        more = {key for key, of in bases.items() if key not in errors and set(of) & names}
        if not more:
            break
        errors |= more
    found: dict[str, type[BaseException]] = {}
    for module, name in sorted(errors):
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseException), f"{module}.{name} is not an exception"
        assert name not in found, f"two error classes named {name}"
        found[name] = cls
    return found


def drawn_parents(docstring: str, known: set[str]) -> dict[str, str | None]:
    """The tree a docstring draws: each class drawn, with the class drawn above it."""
    parents: dict[str, str | None] = {}
    column_of: list[tuple[int, str]] = []  # the path from the root to the line above
    for line in docstring.splitlines():
        match = BRANCH.search(line)
        if match:
            name, column = match.group(1), match.start(1)
        elif line.split(" ", 1)[0] in known:
            name, column = line.split(" ", 1)[0], 0
        else:
            continue
        while column_of and column_of[-1][0] >= column:
            column_of.pop()
        parents[name] = column_of[-1][1] if column_of else None
        column_of.append((column, name))
    return parents


def test_every_error_derives_from_the_root_and_is_drawn_under_its_parent() -> None:
    classes = error_classes()
    assert {"TokenError", "RolloutError", "RegistryError", "ManifestError"} <= set(classes)
    outside = [name for name, cls in classes.items() if not issubclass(cls, EdgeCascadeError)]
    assert not outside, f"not under EdgeCascadeError: {outside}"

    modules = {importlib.import_module(cls.__module__) for cls in classes.values()}
    drawings = {m.__name__: drawn_parents(m.__doc__ or "", set(classes)) for m in modules}
    for name, cls in classes.items():
        parent = cls.__mro__[1].__name__
        where = [m for m, tree in drawings.items() if tree.get(name) == parent]
        if cls is not EdgeCascadeError:
            assert where, f"{name} ({cls.__module__}) is drawn under {parent} in no docstring"


def test_the_shared_tree_names_every_module_that_draws_a_part() -> None:
    classes = error_classes()
    drawing = {cls.__module__ for cls in classes.values() if cls.__module__.endswith("errors")}
    root_doc = shared_errors.__doc__ or ""
    for module in sorted(drawing - {shared_errors.__name__}):
        assert f"drawn in {module}" in root_doc, module
