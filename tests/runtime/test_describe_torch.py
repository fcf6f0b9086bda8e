"""Per-channel normalisation from metadata on a model converted from PyTorch (NCHW, RGB): the
seed's own pipeline. Needs torch and litert-torch (the train extra); skipped without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.tflite_metadata import metadata_flatbuffer, with_metadata

torch = pytest.importorskip("torch")
litert_torch = pytest.importorskip("litert_torch")

pytestmark = [  # the converters' own deprecations, as in tests/modelzoo/test_finetune.py
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:torch.*"),
]


Module: Any = torch.nn.Module


class ChannelMeans(Module):  # type: ignore[misc]
    """Three "class scores": the mean of each input channel, so the output shows the input."""

    def forward(self, x: object) -> object:
        return torch.mean(x, dim=(2, 3))


def test_per_channel_metadata_reaches_each_channel_of_an_nchw_model(tmp_path: Path) -> None:
    sample = torch.zeros(1, 3, 8, 8)
    model = litert_torch.convert(ChannelMeans().eval(), (sample,))
    path = tmp_path / "means.tflite"
    model.export(str(path))
    meta = metadata_flatbuffer(
        name="channel means", label_file="labels.txt", mean=[10, 20, 30], std=[2, 4, 8],
        color="rgb",
    )  # fmt: skip
    path.write_bytes(with_metadata(path.read_bytes(), meta, {"labels.txt": "r\ng\nb\n"}))
    runtime = ModelRuntime.load(path)
    assert runtime.input_spec.layout == "NCHW"
    assert runtime.description.preprocess_source == "metadata"
    assert runtime.labels == ("r", "g", "b")
    image = np.empty((16, 16, 3), np.uint8)
    image[:] = (50, 100, 200)  # OpenCV order: B, G, R
    raw = runtime.invoke_raw(runtime.preprocess(image))
    assert np.allclose(raw, [(200 - 10) / 2, (100 - 20) / 4, (50 - 30) / 8])
