"""The seeded camera drift: deterministic, neutral when empty, and it costs the edge model >= 10
points (no torch: numpy, OpenCV and the LiteRT runtime)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgecascade.modelzoo.drift import DEFAULT_DRIFT, NO_DRIFT, DriftSpec, apply_drift
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.drifted import drifted_accuracy, eval_frames
from tests.utils.paths import EDGE_MODEL


def test_seeded_and_pure() -> None:
    image = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    copy = image.copy()
    first = apply_drift(image, DEFAULT_DRIFT, np.random.default_rng(3))
    again = apply_drift(image, DEFAULT_DRIFT, np.random.default_rng(3))
    other = apply_drift(image, DEFAULT_DRIFT, np.random.default_rng(4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(image, copy)
    assert first.dtype == np.uint8 and first.shape == image.shape


def test_neutral_spec_changes_nothing_and_colour_frames_work() -> None:
    image = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    assert np.array_equal(apply_drift(image, NO_DRIFT, np.random.default_rng(0)), image)
    drifted = apply_drift(image, DEFAULT_DRIFT, np.random.default_rng(0))
    assert drifted.shape == image.shape
    with pytest.raises(ValueError, match="uint8"):
        apply_drift(image.astype(np.float32), DEFAULT_DRIFT, np.random.default_rng(0))


def test_brightness_and_contrast_do_what_they_say() -> None:
    grey = np.full((4, 4), 100, np.uint8)
    rng = np.random.default_rng(0)
    assert apply_drift(grey, DriftSpec(brightness=20), rng)[0, 0] == 120
    assert apply_drift(grey, DriftSpec(contrast=0.5), rng)[0, 0] == 114  # 128 + (100-128)/2


def test_default_drift_costs_the_edge_model_at_least_ten_points(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = ModelRuntime.load(EDGE_MODEL)
    frames = eval_frames(runtime)
    before = drifted_accuracy(runtime, frames, NO_DRIFT, np.random.default_rng(0))
    after = drifted_accuracy(runtime, frames, DEFAULT_DRIFT, np.random.default_rng(0))
    with capsys.disabled():
        sys.stdout.write(
            f"\nedge int8 on {len(frames)} eval frames: {before:.4f} -> {after:.4f} drifted\n"
        )
    assert before == pytest.approx(0.909, abs=0.01)
    assert before - after >= 0.10
