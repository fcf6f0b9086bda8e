"""``edgecascade cloud train`` refusals that need no torch, and the child version scheme."""

from __future__ import annotations

import errno
import importlib.util
import json
from pathlib import Path

import pytest

from edgecascade.cli import main
from edgecascade.cloud.dataset import write_dataset
from edgecascade.modelzoo.export import TRAIN_HINT
from edgecascade.modelzoo.fashion import LABELS
from edgecascade.train_cli import child_version
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EVAL_SAMPLE
from tests.utils.verdicts import make_sample, trainable_copy


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    png = next(EVAL_SAMPLE.glob("bag/*.png")).read_bytes()
    dest = tmp_path / "dataset"
    items = [(make_sample(f"id-{n}", LABELS[n % 10], LABELS), png) for n in range(20)]
    write_dataset(dest, labels=LABELS, items=items, snapshot_id="abcdef123456")
    return dest


def train(dataset: Path, parent: Path, out: Path) -> list[str]:
    return ["cloud", "train", "--dataset", str(dataset), "--parent", str(parent), "--out", str(out)]


def test_child_version() -> None:
    assert child_version("1.0.0", "abcdef123456") == "1.1.0-ft.abcdef12"
    assert child_version("1.1.0-ft.abcdef12", "0123456789") == "1.2.0-ft.01234567"
    assert child_version("v7", "snap") == "v7-ft.snap"


def test_parent_without_trainable_source_is_refused_by_name(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(train(dataset, CLOUD_MODEL, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "fashion-cloud@1.0.0 has no trainable source" in err
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_match_the_card_are_refused(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = trainable_copy(EDGE_MODEL, tmp_path / "parent", b"weights")
    (tmp_path / "parent" / "weights.pt").write_bytes(b"other weights")
    assert main(train(dataset, parent, tmp_path / "out")) == 2
    assert "differs from the card's weights_sha256" in capsys.readouterr().err


def test_dataset_error_names_the_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = trainable_copy(EDGE_MODEL, tmp_path / "parent", b"weights")
    manifest = dataset / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    lines[6] = lines[6].replace('"label":"', '"label":"x')
    manifest.write_text("\n".join(lines) + "\n")
    meta = json.loads((dataset / "dataset.json").read_text())
    import hashlib

    meta["manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    (dataset / "dataset.json").write_text(json.dumps(meta))
    assert main(train(dataset, parent, tmp_path / "out")) == 2
    assert "manifest.jsonl line 7: label 'x" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_non_empty_out_is_refused(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = trainable_copy(EDGE_MODEL, tmp_path / "parent", b"weights")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.tflite").write_bytes(b"x")
    assert main(train(dataset, parent, tmp_path / "out")) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None, reason="the train extra is installed"
)
def test_missing_train_extra_names_the_install_command(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = trainable_copy(EDGE_MODEL, tmp_path / "parent", b"weights")
    assert main(train(dataset, parent, tmp_path / "out")) == 2
    assert TRAIN_HINT in capsys.readouterr().err
    assert list(tmp_path.glob(".out.partial-*")) == []
    assert not (tmp_path / "out").exists()


def test_a_full_disk_fails_the_run_by_name_and_keeps_nothing(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills while the child is written (fault injected at the write: the fine-tune
    itself is replaced, so this runs without torch): a clear error, no --out, no staging."""
    from edgecascade.cloud.training_gates import TrainingResult
    from edgecascade.modelzoo import finetune
    from edgecascade.shared.runtime.card import LineageMetrics

    figures = LineageMetrics(holdout_accuracy=0.5, original_accuracy=0.9)
    result = TrainingResult(
        before=figures,
        after=figures,
        train_samples=16,
        holdout_samples=4,
        replay_samples_seen=0,
        original_eval_dataset="eval",
        epochs=1,
        seconds=0.0,
    )
    child = finetune.Child(EDGE_MODEL.read_bytes(), b"child weights", result)
    monkeypatch.setattr(finetune, "finetune", lambda *args: child)
    write_bytes = Path.write_bytes

    def full(path: Path, data: bytes) -> int:
        if ".out.partial-" in str(path) and path.suffix == ".pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    parent = trainable_copy(EDGE_MODEL, tmp_path / "parent", b"weights")
    assert main(train(dataset, parent, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "out: cannot write the child model" in err and "No space left on device" in err
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out.partial-*")) == []
