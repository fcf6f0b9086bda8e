"""The browser camera page through the conformance suite, as any foreign agent would go:
``edgecascade camera launch`` is the ``--agent-cmd`` (headless chromium, a fake camera, LiteRT.js,
MQTT over WebSockets), and every check of the suite passes."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

from edgecascade.conformance.report import Status
from edgecascade.conformance.runner import Options, run_conformance
from tests.utils.paths import REPO

FP32 = REPO / "models" / "fashion" / "fashion_edge_fp32.tflite"


def next_version(tmp_path: Path) -> Path:
    """Another float model the page can run, for the offer: the same network with 16 bytes of
    padding after the flatbuffer (LiteRT ignores them), so another file, sha256 and version.
    The repository's only other classifiers take int8 input, which LiteRT.js does not run."""
    model = tmp_path / "fashion_edge_fp32_next.tflite"
    data = FP32.read_bytes() + bytes(16)
    model.write_bytes(data)
    card = json.loads(FP32.with_suffix(".json").read_text())
    card |= {"version": "1.0.1", "sha256": hashlib.sha256(data).hexdigest()}
    card["size_bytes"] = len(data)
    model.with_suffix(".json").write_text(json.dumps(card))
    return model


def test_the_browser_camera_page_passes_every_check(tmp_path: Path, camera_page: Path) -> None:
    launch = f"{shlex.quote(sys.executable)} -m edgecascade camera launch"
    options = Options(
        agent_cmd=launch,
        model=FP32,
        offer_model=next_version(tmp_path),
        workdir=tmp_path / "run",
        say=print,
    )
    report = run_conformance(options)
    statuses = {check.name: check.status for check in report.checks}
    assert report.passed, report.table()
    assert set(statuses.values()) == {Status.PASS}, report.table()
    assert {"lwt.offline", "offers.valid", "offers.tampered", "verdicts.applied"} <= set(statuses)
