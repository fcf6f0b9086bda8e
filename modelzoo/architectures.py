"""The registry of trainable architectures: what a card's ``trainable.architecture`` names.

A model can be fine-tuned only if the network that produced it can be rebuilt, so its torch
weights (``trainable.weights``, a state_dict) can be loaded into it. Each entry builds the
network exactly as the zoo trained it: a module that takes raw 0..255 pixels as a float
(N, H, W, C) tensor and returns logits, with the permute and normalisation as its first layer
(the export wrapper), so the same module is trained, fine-tuned and exported as is.

Registered explicitly here, never by import side effects. torch is imported inside the builders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import ModelError

REPO = Path(__file__).resolve().parent.parent
Replay = Callable[[Path | None], tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]]

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # of the Fashion-MNIST training split
FASHION_EVAL = REPO / "data" / "fashion-mnist-eval"  # the first 2,000 test images


@dataclass(frozen=True)
class Architecture:
    """How to rebuild a network the zoo trained."""

    id: str
    description: str
    input_shape: tuple[int, int, int]  # H, W, C of the raw pixels the module takes
    build: Callable[[], Any]  # a fresh torch module: raw NHWC pixels -> logits
    # The original training data (N x H x W x C raw pixels, labels), for replay; its folder.
    replay: Replay | None = None
    original_eval: Path | None = None  # ImageFolder the original accuracy is measured on
    # Whether a left-right mirrored frame keeps its label (its training flipped frames), so a
    # fine-tune may flip too.
    mirror: bool = False


def fashion_replay(data_dir: Path | None) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Fashion-MNIST's training split (Debian's dataset-fashion-mnist)."""
    from edgecascade.modelzoo.fashion import DATA_DIR, load_split

    split = load_split(data_dir or DATA_DIR, "train")
    return split.images[..., None], split.labels


def raw_pixels(mean: float, std: float) -> Any:
    """The export wrapper: (N, H, W, C) raw 0..255 -> normalised (N, C, H, W), in the graph."""
    import torch
    from torch import nn

    class RawPixels(nn.Module):  # type: ignore[misc]  # torch is untyped for mypy here
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.permute(0, 3, 1, 2) / 255.0 - mean) / std

    return RawPixels()


def fashion_edge_cnn() -> Any:
    """9,098 parameters: two 3x3 conv + max-pool stages and a linear layer."""
    from torch import nn

    return nn.Sequential(
        raw_pixels(FASHION_MEAN, FASHION_STD),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def fashion_cloud_cnn() -> Any:
    """568,906 parameters: four batch-normalised conv layers, dropout, two linear layers."""
    from torch import nn

    def conv(c_in: int, c_out: int) -> list[Any]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        raw_pixels(FASHION_MEAN, FASHION_STD),
        *conv(1, 32),
        *conv(32, 32),
        nn.MaxPool2d(2),
        nn.Dropout(0.1),
        *conv(32, 64),
        *conv(64, 64),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 160),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(160, 10),
    )


ARCHITECTURES: dict[str, Architecture] = {
    "fashion-edge-cnn": Architecture(
        "fashion-edge-cnn",
        "Fashion-MNIST edge CNN (9k parameters)",
        (28, 28, 1),
        fashion_edge_cnn,
        fashion_replay,
        FASHION_EVAL,
        mirror=True,
    ),
    "fashion-cloud-cnn": Architecture(
        "fashion-cloud-cnn",
        "Fashion-MNIST cloud CNN (0.6M parameters)",
        (28, 28, 1),
        fashion_cloud_cnn,
        fashion_replay,
        FASHION_EVAL,
        mirror=True,
    ),
}


def architecture(architecture_id: str) -> Architecture:
    try:
        return ARCHITECTURES[architecture_id]
    except KeyError:
        raise ModelError(
            f"unknown architecture {architecture_id!r}; registered: {sorted(ARCHITECTURES)}"
        ) from None
