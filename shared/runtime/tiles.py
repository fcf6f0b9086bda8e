"""Sliced inference: a small-input detector run on overlapping tiles of a large frame.

A 192x192 detector sees a 1280x720 frame shrunk 6.7 times: a face 40 pixels wide becomes 6, below
what it can find. Run on tiles about twice its input size, it sees that face at a third of its
size instead. :func:`detect_sliced` runs the detector on the whole frame (for the large objects a
tile would cut) and on a grid of overlapping tiles, moves each tile's boxes into frame pixels and
merges them: boxes are taken best score first, and a box is dropped when a kept box of its label
covers most of it (intersection over the *smaller* box, not over the union, so the half of an
object a tile border cut off merges into the whole one seen by the neighbouring tile; the merge
rule of SAHI's greedy NMM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from edgecascade.shared.runtime.detect import Detection, DetectionResult
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.preprocess import Image


class DetectsFrames(Protocol):
    """What :func:`detect_sliced` needs of a detector."""

    def detect(self, image: Image) -> DetectionResult: ...


@dataclass(frozen=True, slots=True)
class Slicing:
    """How to tile: ``tile`` pixels square (0: no tiles), ``overlap`` of a tile shared with its
    neighbour, ``merge_overlap`` of the smaller box covered by a better one to merge it."""

    tile: int = 0
    overlap: float = 0.25
    merge_overlap: float = 0.6

    def __post_init__(self) -> None:
        if self.tile < 0:
            raise ValueError(f"tile size {self.tile} is negative")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"tile overlap {self.overlap} is not in [0, 1)")
        if not 0 < self.merge_overlap <= 1:
            raise ValueError(f"merge overlap {self.merge_overlap} is not in (0, 1]")


def auto_tile(height: int, width: int, input_size: int, factor: float = 2.0) -> int:
    """A tile ``factor`` times the model's input side, or 0 (no tiles) when the frame's short
    side is not larger than two such tiles would cover anyway."""
    tile = round(input_size * factor)
    return tile if min(height, width) > tile * 1.25 else 0


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length``, the last flush with the
    end, neighbours sharing at least ``overlap`` of a tile."""
    if tile >= length:
        return [0]
    stride = max(1, int(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _covered(inner: Detection, outer: Detection) -> float:
    """The fraction of the smaller of two boxes inside the other."""
    a, b = inner.box, outer.box
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 0.0


def merge(found: list[Detection], merge_overlap: float, limit: int) -> list[Detection]:
    """Best first, each kept unless a kept box of its label covers ``merge_overlap`` of it."""
    kept: list[Detection] = []
    for candidate in sorted(found, key=lambda d: -d.score):
        if len(kept) >= limit:
            break
        if all(k.label != candidate.label or _covered(candidate, k) < merge_overlap for k in kept):
            kept.append(candidate)
    return kept


def detect_sliced(
    detector: DetectsFrames, image: Image, slicing: Slicing, limit: int = 100
) -> DetectionResult:
    """Detections of the whole frame and of its tiles, merged, in frame pixels, best first."""
    height, width = image.shape[:2]
    whole = detector.detect(image)
    found = list(whole.detections)
    timings = dict(whole.timings_ms)
    faults = whole.faults
    tiles = 0
    if slicing.tile:
        for y in tile_origins(height, slicing.tile, slicing.overlap):
            for x in tile_origins(width, slicing.tile, slicing.overlap):
                part = detector.detect(image[y : y + slicing.tile, x : x + slicing.tile])
                tiles += 1
                # A box a tile's border cuts is clipped by design: only broken outputs count.
                faults += OutputFaults(part.faults.nan_scores, part.faults.degenerate)
                for stage, ms in part.timings_ms.items():
                    timings[stage] = timings.get(stage, 0.0) + ms
                found += [
                    Detection(
                        d.label, d.score, (d.box[0] + x, d.box[1] + y, d.box[2] + x, d.box[3] + y)
                    )
                    for d in part.detections
                ]
    timings["tiles"] = float(tiles)
    merged = merge(found, slicing.merge_overlap, limit)
    return DetectionResult(tuple(merged), timings, whole.accelerator, faults)
