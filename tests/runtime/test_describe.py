"""A model without a card: what it says about itself (TFLite metadata, input quantization) decides,
on the committed real models and copies of them that carry metadata."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, Preprocess, load_card_for
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.describe import float_range, quantization_normalization
from edgecascade.shared.runtime.preprocess import InputSpec, TensorSpec, pixel_table
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.runtime.tflite_metadata import read_metadata
from tests.utils.paths import EDGE_MODEL, EDGE_MODEL_FP32, EVAL_SAMPLE
from tests.utils.tflite_metadata import metadata_flatbuffer, with_metadata

LABELS = load_card_for(EDGE_MODEL).labels


def predictions(runtime: ModelRuntime) -> list[int]:
    data = LabelledFolder(EVAL_SAMPLE, LABELS)
    return [runtime.classify(image).top(1)[0][0] for _p, image, _t in list(data)[::20]]


def bare_copy(tmp_path: Path, model: Path, content: bytes | None = None) -> Path:
    path = tmp_path / model.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.read_bytes() if content is None else content)
    return path


def test_quantization_gives_the_range_the_issue_names() -> None:
    """An int8 input with scale 0.98 and zero point -128 expects pixels in [0, 250]."""
    tensor = TensorSpec("input", 0, (1, 224, 224, 3), "int8", 0.98, -128)
    low, high = float_range(tensor)
    assert low == 0.0 and high == pytest.approx(249.9)
    mean, std = quantization_normalization(tensor) or (-1.0, -1.0)
    assert mean == 0.0 and std == pytest.approx(1 / 0.98)  # mean 0, std ~1.02
    table = pixel_table(InputSpec.from_tensor(tensor), Preprocess(mean=mean, std=std))
    assert np.array_equal(table, np.arange(256) - 128)  # every pixel level its own int8 level
    uint8 = TensorSpec("input", 0, (1, 224, 224, 3), "uint8", 1 / 128, 128)
    assert float_range(uint8)[0] == -1.0 and float_range(uint8)[1] == pytest.approx(127 / 128)
    assert quantization_normalization(uint8) == (128.0, 128.0)
    assert quantization_normalization(TensorSpec("f", 0, (1, 8, 8, 3), "float32", 0.0, 0)) is None


def test_a_bare_int8_model_runs_as_its_card_would(tmp_path: Path) -> None:
    bare = ModelRuntime.load(bare_copy(tmp_path, EDGE_MODEL))
    assert bare.description.preprocess_source == "input quantization"
    assert bare.description.labels_source == "defaults"
    assert bare.card.preprocess.mean == 0.0
    assert bare.card.preprocess.std == pytest.approx(1.0001, abs=1e-4)
    assert predictions(bare) == predictions(ModelRuntime.load(EDGE_MODEL))


def test_metadata_gives_labels_and_normalisation(tmp_path: Path) -> None:
    meta = metadata_flatbuffer(
        name="fashion edge", label_file="labels.txt", mean=[0.0], std=[1.0], color="gray"
    )
    content = with_metadata(EDGE_MODEL_FP32.read_bytes(), meta, {"labels.txt": "\n".join(LABELS)})
    path = bare_copy(tmp_path, EDGE_MODEL_FP32, content)
    described = ModelRuntime.load(path)
    assert described.description.preprocess_source == "metadata"
    assert described.description.labels_source == "metadata"
    assert described.labels == tuple(LABELS)
    assert described.card.source == "fashion edge"
    assert predictions(described) == predictions(ModelRuntime.load(EDGE_MODEL_FP32))
    # Without metadata the float model gets the defaults, and they are wrong for it.
    assert ModelRuntime.load(bare_copy(tmp_path / "x", EDGE_MODEL_FP32)).description.summary() == (
        "preprocessing from defaults (mean 127.5, std 127.5, gray, stretch); labels from defaults"
    )
    # A card beside the model always wins over what the model says.
    ModelCard(name="mine", preprocess=Preprocess(mean=10.0, std=2.0)).save(
        path.with_suffix(".json")
    )
    carded = ModelRuntime.load(path)
    assert carded.description.summary().startswith("preprocessing from card (mean 10, std 2,")
    assert carded.labels == tuple(str(i) for i in range(10))


def test_per_channel_metadata_is_read_in_channel_order(tmp_path: Path) -> None:
    meta = metadata_flatbuffer(
        name="",
        label_file=None,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        color="rgb",
    )
    found = read_metadata(with_metadata(EDGE_MODEL_FP32.read_bytes(), meta), "m")
    assert found is not None
    assert (found.mean, found.std) == ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    assert (found.color, found.labels, found.label_file) == ("rgb", (), None)
    assert read_metadata(EDGE_MODEL.read_bytes(), "m") is None  # the committed files carry none


@pytest.mark.parametrize(
    ("meta", "files", "reason"),
    [
        (
            {"label_file": "labels.txt", "mean": [0.0], "std": [1.0], "color": "gray"},
            {"labels.txt": "a\nb\nc\nd\ne"},
            "metadata's label file 'labels.txt' lists 5 labels but the model has 10 outputs",
        ),
        (
            {"label_file": None, "mean": [0.0, 1.0, 2.0], "std": [1.0], "color": None},
            {},
            r"gives 3 normalisation mean values \[0.0, 1.0, 2.0\] but the input has 1 channel",
        ),
        (
            {"label_file": None, "mean": [0.0], "std": [0.0], "color": None},
            {},
            "(?s)normalisation is unusable.*std 0.0: it must be finite and > 0",
        ),
        (
            {"label_file": None, "mean": None, "std": None, "color": "rgb"},
            {},
            "metadata says colour space RGB but the input has 1 channel",
        ),
        (
            {"label_file": "labels.txt", "mean": None, "std": None, "color": None},
            {"other.txt": "x"},
            "names the label file 'labels.txt', which is not among the model's associated files",
        ),
        (
            {"label_file": "labels.txt", "mean": None, "std": None, "color": None},
            None,
            "names the label file 'labels.txt' but the model carries no associated files",
        ),
    ],
    ids=["label-count", "mean-channels", "zero-std", "colour-space", "missing-file", "no-zip"],
)
def test_metadata_that_contradicts_the_model_is_refused(
    tmp_path: Path, meta: dict[str, object], files: dict[str, str] | None, reason: str
) -> None:
    flat = metadata_flatbuffer(name="broken", **meta)  # type: ignore[arg-type]
    path = bare_copy(tmp_path, EDGE_MODEL, with_metadata(EDGE_MODEL.read_bytes(), flat, files))
    with pytest.raises(ModelError, match=reason) as info:
        ModelRuntime.load(path)
    assert str(path) in str(info.value)


def test_a_model_with_two_image_inputs_is_refused(tmp_path: Path) -> None:
    from ai_edge_litert.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(EDGE_MODEL_FP32.read_bytes()))
    graph = tree.subgraphs[0]
    second = copy.deepcopy(graph.tensors[graph.inputs[0]])
    second.name = b"second_image"
    graph.tensors.append(second)
    graph.inputs = [*graph.inputs, len(graph.tensors) - 1]
    path = tmp_path / "two.tflite"
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(tree)))
    with pytest.raises(ModelError, match=r"one image input .* has 2 input\(s\)") as info:
        ModelRuntime.load(path)
    assert str(path) in str(info.value) and "second_image" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"mean": [1.0, 2.0]}, r"mean \[1.0, 2.0\] has 2 values; give one value or one per"),
        ({"std": 0.0}, "std 0.0: it must be finite and > 0"),
        ({"std": [1.0, 0.0, 1.0]}, r"std \[1.0, 0.0, 1.0\] has 0.0"),
        ({"mean": float("nan")}, "mean nan: it must be finite"),
    ],
)
def test_preprocess_validation_names_the_bad_value(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Preprocess.model_validate(fields)


def test_per_channel_normalisation_reaches_each_channel(tmp_path: Path) -> None:
    spec = InputSpec.from_tensor(TensorSpec("input", 0, (1, 4, 4, 3), "float32", 0.0, 0))
    prep = Preprocess(mean=[10.0, 20.0, 30.0], std=[1.0, 2.0, 4.0], color="bgr")
    table = pixel_table(spec, prep)
    assert table.shape == (256, 3)
    assert np.allclose(table[100], [90.0, 40.0, 17.5])
    one_channel = InputSpec.from_tensor(TensorSpec("input", 0, (1, 4, 4, 1), "float32", 0.0, 0))
    with pytest.raises(ValueError, match=r"preprocess.mean \[10.0, 20.0, 30.0\] has 3 values but"):
        pixel_table(one_channel, prep)
    card = ModelCard(name="m", preprocess=prep)
    assert ModelCard.model_validate_json(card.model_dump_json()) == card


def test_a_bare_imagenet_classifier_reads_photos_as_its_card_does(tmp_path: Path) -> None:
    """The committed EfficientNet-Lite0 int8 without its card (issue 18's case: scale 0.98, zero
    point -128): its input quantization says mean 0, std ~1.02, and on every committed photo its
    top-1 is among the carded model's top 3 (the card's centre crop is the only difference); on
    the labelled ones it is right at least as often. The old default, [-1, 1], got 0 of 20."""
    import cv2

    from tests.utils.paths import IMAGENET_EDGE_MODEL, IMAGENET_PHOTOS

    bare = ModelRuntime.load(bare_copy(tmp_path, IMAGENET_EDGE_MODEL))
    carded = ModelRuntime.load(IMAGENET_EDGE_MODEL)
    assert bare.description.preprocess_source == "input quantization"
    assert bare.card.preprocess.mean == 0.0
    assert bare.card.preprocess.std == pytest.approx(1.0167, abs=1e-3)
    photos = sorted(IMAGENET_PHOTOS.rglob("*.jpg"))
    assert len(photos) >= 5
    right = {"bare": 0, "carded": 0}
    for photo in photos:
        image = np.asarray(cv2.imread(str(photo)), dtype=np.uint8)
        top = bare.classify(image).top(1)[0][0]
        carded_top = [index for index, *_ in carded.classify(image).top(3)]
        assert top in carded_top, photo.name
        truth = photo.parent.name if photo.parent != IMAGENET_PHOTOS else None
        if truth is not None:
            right["bare"] += carded.labels[top] == truth
            right["carded"] += carded.labels[carded_top[0]] == truth
    assert right["bare"] >= right["carded"] >= 1
