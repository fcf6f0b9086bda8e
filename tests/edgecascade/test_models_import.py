"""``edgecascade models import``: real models in, a copy and its card out, or nothing at all."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgecascade.cli import main
from edgecascade.shared.runtime.card import ModelCard, load_card_for
from tests.utils.paths import EDGE_MODEL, EDGE_MODEL_FP32, EVAL_SAMPLE, sample_subset
from tests.utils.tflite_metadata import metadata_flatbuffer, with_metadata

LABELS = load_card_for(EDGE_MODEL).labels


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["models", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bare_int8_model_is_imported_and_evaluates_as_its_own_card_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    code, out, err = run(
        capsys, "import", EDGE_MODEL, "--name", "byom", "--version", "2.1",
        "--labels", labels, "--models-dir", models,
    )  # fmt: skip
    assert code == 0, err
    assert "found in the model:" in out and "assumed:" in out
    assert "scale 0.999902 zero point -128 (float range [0, 255])" in out
    assert "decided: preprocessing from input quantization (mean 0, std 1.0001" in out
    assert "labels: 10 from labels.txt (--labels)" in out
    model, card_file = models / "byom" / "byom.tflite", models / "byom" / "byom.json"
    assert model.read_bytes() == EDGE_MODEL.read_bytes()
    card = ModelCard.load(card_file)
    assert (card.name, card.version, card.labels) == ("byom", "2.1", LABELS)
    assert card.sha256 == load_card_for(EDGE_MODEL).sha256 and card.size_bytes == 14864
    assert card.build_command == "edgecascade models import fashion_edge_int8.tflite"
    assert sorted(p.name for p in (models / "byom").iterdir()) == ["byom.json", "byom.tflite"]
    # The imported card scores what the hand-written one does, and eval says which decided.
    sample_subset(tmp_path / "data", per_class=10)
    scores = []
    for path in (model, EDGE_MODEL):
        code, out, err = run(capsys, "eval", path, tmp_path / "data", "--limit", "100")
        assert code == 0, err
        assert "card      preprocessing from card" in out
        scores.append(next(line for line in out.splitlines() if line.startswith("top-1")))
    assert scores[0] == scores[1]


def test_labels_and_normalisation_from_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = metadata_flatbuffer(
        name="fashion", label_file="labels.txt", mean=[0.0], std=[1.0], color="gray"
    )
    source = tmp_path / "published.tflite"
    source.write_bytes(
        with_metadata(EDGE_MODEL_FP32.read_bytes(), meta, {"labels.txt": "\n".join(LABELS)})
    )
    code, out, err = run(capsys, "import", source, "--models-dir", tmp_path / "models")
    assert code == 0, err
    assert "labels: 10 from 'labels.txt' in the metadata" in out
    assert (
        "decided: preprocessing from metadata (mean 0, std 1, gray, stretch); labels from " in out
    )
    card = json.loads((tmp_path / "models" / "published" / "published.json").read_text())
    assert card["labels"] == LABELS and card["source"] == "fashion"
    # The same name again: refused, the first import untouched.
    code, _, err = run(capsys, "import", source, "--models-dir", tmp_path / "models")
    assert code == 2 and "published.tflite exists already" in err


def two_input_model(path: Path) -> Path:
    from ai_edge_litert.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(EDGE_MODEL_FP32.read_bytes()))
    graph = tree.subgraphs[0]
    graph.tensors.append(copy.deepcopy(graph.tensors[graph.inputs[0]]))
    graph.inputs = [*graph.inputs, len(graph.tensors) - 1]
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(tree)))
    return path


def test_bad_input_names_the_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    not_a_model = tmp_path / "photo.tflite"
    not_a_model.write_bytes(next(EVAL_SAMPLE.rglob("*.png")).read_bytes())
    contradicting = tmp_path / "five.tflite"
    meta = metadata_flatbuffer(name="", label_file="l.txt", mean=None, std=None, color=None)
    contradicting.write_bytes(with_metadata(EDGE_MODEL.read_bytes(), meta, {"l.txt": "a\nb"}))
    short_labels = tmp_path / "three.txt"
    short_labels.write_text("a\nb\nc\n")
    cases: list[tuple[list[str | Path], str]] = [
        ([not_a_model], f"{not_a_model}: not a TFLite model"),
        ([two_input_model(tmp_path / "two.tflite")], "has 2 input(s)"),
        ([contradicting], f"{contradicting}: its metadata's label file 'l.txt' lists 2 labels"),
        ([EDGE_MODEL, "--labels", short_labels], f"{short_labels}: lists 3 labels but"),
        ([EDGE_MODEL, "--name", "../up"], "'../up' is not a usable model name"),
        ([tmp_path / "absent.tflite"], "cannot read model file"),
    ]
    for args, reason in cases:
        code, _, err = run(capsys, "import", *args, "--models-dir", models)
        assert code == 2 and reason in err, (args, err)
    assert not models.exists()


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(self: ModelCard, path: Path) -> None:
        path.write_text("{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ModelCard, "save", full_disk)
    models = tmp_path / "deep" / "models"
    code, _, err = run(capsys, "import", EDGE_MODEL, "--models-dir", models)
    assert code == 2 and "cannot write the import" in err and "No space left" in err
    assert not (tmp_path / "deep").exists()
