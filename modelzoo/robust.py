"""Drift augmentation: the training frames of the drift-robust cloud model.

The learning loop (issue 17) needs a cloud model whose verdicts stay right when a camera drifts,
so it can teach the edge model. :data:`edgecascade.modelzoo.drift.DEFAULT_DRIFT` takes the plain
cloud model from ~0.94 to ~0.56; a network trained on frames drawn from the whole drift family
(around and beyond the default shift) does not care. Each epoch sees a freshly drifted copy of
the training split: every frame, with probability :data:`PROBABILITY`, through
:func:`edgecascade.modelzoo.drift.apply_drift` with a spec drawn from :data:`RANGES`.
numpy and OpenCV only (no torch), seeded by the caller's generator.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo.drift import DriftSpec, apply_drift

Images = npt.NDArray[np.uint8]

PROBABILITY = 0.5
# Uniform range of each DriftSpec field (DEFAULT_DRIFT: +10, x0.8, 0.5, 5, 6).
RANGES: dict[str, tuple[float, float]] = {
    "brightness": (-20.0, 30.0),
    "contrast": (0.6, 1.1),
    "blur_sigma": (0.0, 1.0),
    "noise_std": (0.0, 8.0),
    "rotation_degrees": (0.0, 10.0),
}
AUGMENTATION = (
    f"per frame and epoch, with probability {PROBABILITY}: modelzoo/drift.py apply_drift with "
    + ", ".join(f"{name} U[{low:g},{high:g}]" for name, (low, high) in RANGES.items())
    + "; then horizontal flips (p 0.5)"
)


def random_spec(rng: np.random.Generator) -> DriftSpec:
    """One camera's shift, each field drawn uniformly from its range in :data:`RANGES`."""
    return DriftSpec(
        **{name: float(rng.uniform(low, high)) for name, (low, high) in RANGES.items()}
    )


def augment(images: Images, rng: np.random.Generator, probability: float = PROBABILITY) -> Images:
    """A copy of ``images`` (N x H x W) in which each frame is drifted with ``probability``."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be within [0, 1], got {probability}")
    out = images.copy()
    for index in np.flatnonzero(rng.random(len(images)) < probability):
        out[index] = apply_drift(images[index], random_spec(rng), rng)
    return out
