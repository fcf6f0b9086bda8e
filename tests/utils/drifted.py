"""Top-1 of a committed model on the evaluation sample, clean or drifted (LiteRT, no torch)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo.drift import DriftSpec, apply_drift
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.paths import EVAL_SAMPLE

Frames = list[tuple[npt.NDArray[np.uint8], int]]


def eval_frames(runtime: ModelRuntime) -> Frames:
    """The 2,000 frames of ``data/fashion-mnist-eval`` with their class index, in sorted order."""
    return [(image, target) for _, image, target in LabelledFolder(EVAL_SAMPLE, runtime.labels)]


def drifted_accuracy(
    runtime: ModelRuntime, frames: Frames, spec: DriftSpec, rng: np.random.Generator
) -> float:
    """Top-1 on ``frames``, each drifted by ``spec`` with ``rng`` (NO_DRIFT: the clean figure)."""
    hits = [
        runtime.classify(apply_drift(image, spec, rng)).top(1)[0][0] == target
        for image, target in frames
    ]
    return float(np.mean(hits))
