"""What a detection model's outputs get wrong, dropped or clipped and counted, never raised.

A model that returns a NaN score, a box turned inside out by degenerate regressors or a box past
the frame's edge is still a running camera: the frame's other detections are good, so
:class:`~edgecascade.shared.runtime.detector.Detector` keeps them and drops or clips the bad ones
here, counting each kind in :class:`OutputFaults` so the fault is visible (per frame in the
:class:`~edgecascade.shared.runtime.detect.DetectionResult`, in total on the detector) instead
of silent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

# A box past the frame's edge by at most this many pixels is on the edge (the letterbox's
# rounding, float error), not outside it: clipped without being counted.
EDGE_TOLERANCE_PX = 0.5


@dataclass(frozen=True, slots=True)
class OutputFaults:
    """Counts of what the decoding dropped or clipped in one frame (or, summed, in many)."""

    nan_scores: int = 0  # scores that are NaN or infinite: dropped
    degenerate: int = 0  # boxes above the threshold, not finite or with x0 >= x1 or y0 >= y1
    clipped: int = 0  # boxes past the frame's edge, clipped to it and kept
    outside: int = 0  # boxes wholly outside the frame: nothing left after clipping, dropped

    def __add__(self, other: OutputFaults) -> OutputFaults:
        return OutputFaults(
            self.nan_scores + other.nan_scores,
            self.degenerate + other.degenerate,
            self.clipped + other.clipped,
            self.outside + other.outside,
        )

    def __bool__(self) -> bool:
        return any((self.nan_scores, self.degenerate, self.clipped, self.outside))


def screen(boxes: Floats, scores: Floats, threshold: float) -> tuple[Mask, OutputFaults]:
    """The rows of ``boxes`` ``[N, 4]`` (xmin, ymin, xmax, ymax) and ``scores`` ``[N]`` that are
    detections: a finite score >= ``threshold`` and a finite box with area. Boxes below the
    threshold are not counted when degenerate (a background anchor's regressors mean nothing)."""
    bad_score = ~np.isfinite(scores)
    candidate = ~bad_score & (np.nan_to_num(scores, nan=-np.inf) >= threshold)
    with np.errstate(invalid="ignore"):
        shaped = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    sound = np.isfinite(boxes).all(1) & shaped
    faults = OutputFaults(
        nan_scores=int(bad_score.sum()), degenerate=int((candidate & ~sound).sum())
    )
    return candidate & sound, faults


def clip(pixels: Floats, height: int, width: int) -> tuple[Floats, Mask, OutputFaults]:
    """Boxes in frame pixels -> (clipped to the ``height`` x ``width`` frame, the rows that
    still have area, counts of the clipped and of the wholly outside)."""
    clipped = np.clip(pixels, 0, [width, height, width, height]).astype(np.float32)
    moved = np.abs(clipped - pixels).max(1, initial=0.0) > EDGE_TOLERANCE_PX
    inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    faults = OutputFaults(clipped=int((moved & inside).sum()), outside=int((~inside).sum()))
    return clipped, inside, faults
