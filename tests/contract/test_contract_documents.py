"""The published contract (docs/contract): current, valid AsyncAPI by the AsyncAPI project's own
parser, and every example message valid against its JSON Schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from edgecascade.contract_cli import export
from edgecascade.shared.asyncapi import asyncapi_document, message_schemas
from edgecascade.shared.contract import KINDS, spec_for
from tests.fuzz.strategies import SAMPLES
from tests.utils.paths import REPO

COMMITTED = REPO / "docs" / "contract"
PARSER = "@asyncapi/parser@3"


def test_the_committed_documents_are_current(tmp_path: Path) -> None:
    written = export(tmp_path / "contract")
    fresh = {p.relative_to(tmp_path / "contract").as_posix(): p.read_text() for p in written}
    committed = {
        p.relative_to(COMMITTED).as_posix(): p.read_text() for p in COMMITTED.rglob("*.json")
    }
    stale = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    assert not stale, (
        f"docs/contract is stale for {stale}: run `edgecascade contract export --out docs/contract`"
    )


def test_every_row_is_a_channel_and_every_device_kind_an_operation() -> None:
    document = asyncapi_document()
    assert len(document["channels"]) == len(KINDS)
    actions = {(op["action"], op["channel"]["$ref"]) for op in document["operations"].values()}
    assert ("send", "#/channels/result") in actions
    assert ("receive", "#/channels/verdict") in actions
    assert ("receive", "#/channels/ack") in actions
    assert not any(ref == "#/channels/results" for _, ref in actions)  # gateway to cloud only
    escalation = document["components"]["messages"]["escalation"]
    assert escalation["contentType"] == "application/octet-stream"
    assert escalation["x-edgecascade-header"] == {"$ref": "#/components/schemas/EscalationHeader"}


@pytest.mark.parametrize("sample", SAMPLES, ids=[str(s.topic) for s in SAMPLES])
def test_every_example_message_is_valid_against_its_schema(sample: object) -> None:
    topic, document = sample.topic, sample.document  # type: ignore[attr-defined]
    schema = message_schemas()[spec_for(topic).model.__name__]
    jsonschema.validate(document, schema)  # the header, for a framed kind
    broken = {**document, "msg_id": "not-a-uuid"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    """The AsyncAPI parser from the npm registry, installed once into the user's cache."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed (scripts/test installs them: Debian nodejs, npm)")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = cache / "edgecascade" / "asyncapi-parser"
    if not (prefix / "node_modules" / "@asyncapi" / "parser").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PARSER],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return prefix / "node_modules"


def parse(document: Path, parser: Path) -> subprocess.CompletedProcess[str]:
    """``validate_asyncapi.mjs`` on ``document``: a JSON line per diagnostic, then a verdict."""
    return subprocess.run(
        ["node", str(Path(__file__).with_name("validate_asyncapi.mjs")), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ASYNCAPI_PARSER_DIR": str(parser)},
    )


def test_the_asyncapi_parser_accepts_the_document(asyncapi_parser: Path) -> None:
    done = parse(COMMITTED / "asyncapi.json", asyncapi_parser)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines[-1] == {"parsed": True, "errors": 0}, done.stdout
    assert [d for d in lines[:-1] if d["severity"] == 0] == []


def test_the_parser_refuses_a_broken_document(asyncapi_parser: Path, tmp_path: Path) -> None:
    """The check can fail: a channel whose message reference points nowhere."""
    document = asyncapi_document()
    document["channels"]["result"]["messages"]["ResultMessage"]["$ref"] = "#/nowhere"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    assert parse(broken, asyncapi_parser).returncode != 0
