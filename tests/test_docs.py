"""The documentation's links and code references point at things that exist.

Every relative link in README.md, CONTRIBUTING.md and docs/*.md must name an existing file and,
with a ``#fragment``, a heading of that file (GitHub's anchor rules). Every code reference written
as ``path/to/module.py::Name`` or ``::Class.method`` must name a module and a definition in it, so
a rename that leaves the architecture tour behind fails here rather than in a reader's editor.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.utils.paths import REPO

DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_REF = re.compile(r"`([\w/]+\.py)::([\w.]+)`")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        base = slug(match.group(1))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    return [m.group(1) for line in prose(path) for m in LINK.finditer(line)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_an_existing_file_and_heading(doc: Path) -> None:
    assert doc.exists(), f"{doc.relative_to(REPO)} is missing"
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def defines(module: Path, dotted: str) -> bool:
    """``dotted`` (``name`` or ``Class.name``) is defined in ``module``."""
    body: list[ast.stmt] = ast.parse(module.read_text()).body
    for part in dotted.split("."):
        found: ast.stmt | None = None
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name == part:
                    found = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_code_reference_names_a_definition(doc: Path) -> None:
    missing = []
    for line in prose(doc):
        for match in CODE_REF.finditer(line):
            module, name = REPO / match.group(1), match.group(2)
            if not module.exists():
                missing.append(f"{match.group(1)}: no such module")
            elif not defines(module, name):
                missing.append(f"{match.group(1)}::{name}: not defined there")
    assert not missing, f"{doc.relative_to(REPO)}: " + "; ".join(missing)


def test_the_slug_follows_github() -> None:
    assert slug("`bench cascade`: accuracy vs bytes uplinked vs latency") == (
        "bench-cascade-accuracy-vs-bytes-uplinked-vs-latency"
    )
    assert slug("Model slots A/B and signed rollouts (device side)") == (
        "model-slots-ab-and-signed-rollouts-device-side"
    )
    assert slug("7. Scaling out") == "7-scaling-out"
