"""The LiteRT runtime on the committed real models and frames, and its error paths."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, load_card_for
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.evaluate import evaluate, format_table
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EDGE_MODEL_FP32, EVAL_SAMPLE, sample_subset


@pytest.fixture(scope="module")
def edge() -> ModelRuntime:
    return ModelRuntime.load(EDGE_MODEL)


def test_reads_its_input_and_output_spec_from_the_model(edge: ModelRuntime) -> None:
    spec = edge.input_spec
    assert (spec.layout, spec.height, spec.width, spec.channels) == ("NHWC", 28, 28, 1)
    assert edge.num_classes == 10
    assert edge.labels[8] == "bag"
    card = load_card_for(EDGE_MODEL)
    assert edge.sha256 == card.sha256  # the card describes exactly this file
    assert edge.size_bytes == card.size_bytes == EDGE_MODEL.stat().st_size


@pytest.mark.parametrize(
    ("model_path", "dtype"),
    [(EDGE_MODEL, "int8"), (EDGE_MODEL_FP32, "float32"), (CLOUD_MODEL, "int8")],
    ids=["edge-int8", "edge-fp32", "cloud-int8"],
)
def test_correct_top1_on_real_frames(model_path: Path, dtype: str) -> None:
    runtime = ModelRuntime.load(model_path)
    assert runtime.input_spec.tensor.dtype == runtime.output_spec.dtype == dtype
    data = LabelledFolder(EVAL_SAMPLE, runtime.labels, limit=None)
    hits = total = 0
    for _path, image, target in list(data)[::10]:  # 200 frames, every class
        result = runtime.classify(image)
        probabilities = result.probabilities
        assert probabilities.dtype == np.float32
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert result.top(3)[0][2] >= result.top(3)[1][2] >= result.top(3)[2][2]
        hits += result.top(1)[0][0] == target
        total += 1
    assert total == 200
    assert hits / total > 0.8


def test_float_and_int8_agree(edge: ModelRuntime) -> None:
    fp32 = ModelRuntime.load(EDGE_MODEL_FP32)
    data = LabelledFolder(EVAL_SAMPLE, edge.labels, limit=300)
    same = sum(
        fp32.classify(image).top(1)[0][0] == edge.classify(image).top(1)[0][0]
        for _, image, _ in data
    )
    assert same / len(data) > 0.97


def test_colour_and_size_of_the_frame_do_not_matter(edge: ModelRuntime) -> None:
    gray = cv2.imread(str(sorted((EVAL_SAMPLE / "trouser").glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    big_bgr = cv2.cvtColor(cv2.resize(gray, (224, 224)), cv2.COLOR_GRAY2BGR)
    assert edge.classify(gray.astype(np.uint8)).top(1)[0][1] == "trouser"
    assert edge.classify(big_bgr.astype(np.uint8)).top(1)[0][1] == "trouser"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "too short"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a TFLite model"),
        (bytes(range(256)) * 4, "not a TFLite model"),
    ],
    ids=["empty", "png", "random"],
)
def test_corrupt_files_name_file_and_problem(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "broken.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=reason) as info:
        ModelRuntime.load(path)
    assert str(path) in str(info.value)


def test_truncated_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "truncated.tflite"
    path.write_bytes(EDGE_MODEL.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot load") as info:
        ModelRuntime.load(path)
    assert str(path) in str(info.value)


def test_missing_file_and_label_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        ModelRuntime.load(tmp_path / "absent.tflite")
    card = load_card_for(EDGE_MODEL).model_copy(update={"labels": ["a", "b"]})
    with pytest.raises(ModelError, match="10 outputs but its card lists 2 labels"):
        ModelRuntime.load(EDGE_MODEL, card=card)


def test_bare_float_model_without_card_uses_defaults_and_index_labels(tmp_path: Path) -> None:
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(EDGE_MODEL_FP32.read_bytes())
    runtime = ModelRuntime.load(bare)
    assert runtime.labels == tuple(str(i) for i in range(10))
    assert runtime.description.preprocess_source == "defaults"
    assert runtime.card.preprocess == ModelCard.for_bare_model(bare).preprocess.model_copy(
        update={"color": "gray"}  # one input channel
    )


def test_dataset_errors_and_skips(tmp_path: Path, edge: ModelRuntime) -> None:
    sample_subset(tmp_path / "ok", per_class=1)
    (tmp_path / "ok" / "bag" / "notes.txt").write_text("not an image")
    (tmp_path / "ok" / "coat" / "fake.png").write_bytes(b"garbage")
    data = LabelledFolder(tmp_path / "ok", edge.labels)
    assert len(list(data)) == 10
    assert sorted(p.name for p in data.skipped) == ["fake.png", "notes.txt"]
    (tmp_path / "ok" / "spaceship").mkdir()
    with pytest.raises(ModelError, match="spaceship"):
        LabelledFolder(tmp_path / "ok", edge.labels)
    (tmp_path / "ok" / "spaceship").rmdir()
    (tmp_path / "ok" / "3").mkdir()  # an output index is a valid class folder
    assert len(LabelledFolder(tmp_path / "ok", edge.labels)) == 12


def test_evaluate_agrees_with_independent_count(tmp_path: Path, edge: ModelRuntime) -> None:
    sample_subset(tmp_path / "data", per_class=30)
    data = LabelledFolder(tmp_path / "data", edge.labels)
    expected = sum(edge.classify(image).top(1)[0][0] == target for _, image, target in data)
    report = evaluate(edge, LabelledFolder(tmp_path / "data", edge.labels), warmup=1)
    assert report.images == 300
    assert report.top1_accuracy == pytest.approx(expected / 300)
    assert sum(b.count for b in report.confidence) == 300
    assert sum(c.total for c in report.per_class.values()) == 300
    assert report.latency_ms["invoke"]["p95"] >= report.latency_ms["invoke"]["p50"] > 0
    table = format_table(report)
    assert "top-1" in table and "ankle_boot" in table
