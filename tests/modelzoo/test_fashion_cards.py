"""The committed fashion pair reproduces its cards' accuracy through ``models eval``."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecascade.cli import main
from edgecascade.modelzoo.fashion import DATA_DIR
from edgecascade.shared.runtime.card import load_card_for
from tests.utils.paths import CLOUD_MODEL, CLOUD_ROBUST_MODEL, EDGE_MODEL, EDGE_MODEL_FP32

pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "t10k-images-idx3-ubyte.gz").exists(),
    reason="needs Debian's dataset-fashion-mnist (scripts/test installs it)",
)


@pytest.fixture(scope="module")
def test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fashion-test")
    assert main(["models", "dataset", "fashion", str(dest)]) == 0
    assert sum(1 for _ in dest.rglob("*.png")) == 10_000
    return dest


@pytest.mark.parametrize(
    "model",
    [EDGE_MODEL, EDGE_MODEL_FP32, CLOUD_MODEL, CLOUD_ROBUST_MODEL],
    ids=["edge", "edge-fp32", "cloud", "cloud-robust"],
)
def test_eval_reproduces_the_card(model: Path, test_split: Path, tmp_path: Path) -> None:
    import json

    report = tmp_path / "report.json"
    assert main(["models", "eval", str(model), str(test_split), "--output", str(report)]) == 0
    measured = json.loads(report.read_text())
    card = load_card_for(model)
    assert measured["images"] == 10_000
    assert measured["sha256"] == card.sha256
    assert measured["top1_accuracy"] == pytest.approx(card.metrics.accuracy, abs=5e-5)
