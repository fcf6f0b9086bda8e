"""The frames of ``bench loop``: disjoint slices of the Fashion-MNIST test split, clean or drifted.

The committed evaluation sample is the split's first 2,000 images; it never reaches a camera.
Edge-only accuracy is measured on it as it is (the original distribution) and under the drift
(:func:`drifted_eval`, seeded), so the figures of every phase come from frames no model was
trained on. The cameras replay the other 8,000 in a seeded order: each phase takes the next
slice, one folder per camera (``<label>/<index>.png``, the agent's ground truth), so no frame is
seen twice, and the frames a fine-tune learned from are never the ones that judge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecascade.modelzoo.drift import DriftSpec, apply_drift
from edgecascade.modelzoo.fashion import LABELS, Split, load_split
from edgecascade.shared.errors import EdgeCascadeError

EVAL_COUNT = 2000  # the committed sample: data/fashion-mnist-eval


@dataclass(frozen=True)
class PhaseFrames:
    """One phase's frames: a folder per camera."""

    name: str
    folders: dict[str, Path]  # camera -> ImageFolder
    per_device: int
    drifted: bool


def write_folder(
    dest: Path, split: Split, indices: np.ndarray, drift: DriftSpec | None, rng: np.random.Generator
) -> Path:
    """The images at ``indices`` (drifted when ``drift``) as ``dest/<label>/<index>.png``."""
    import cv2

    for index in indices:
        image = split.images[index]
        if drift is not None:
            image = apply_drift(image, drift, rng)
        path = dest / LABELS[int(split.labels[index])] / f"{int(index):05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise EdgeCascadeError(f"cannot write {path}")
    return dest


class FramePlan:
    """Hands out the next unused slice of the camera pool, phase by phase."""

    def __init__(
        self, data_dir: Path, root: Path, cameras: list[str], drift: DriftSpec, seed: int
    ) -> None:
        self.split = load_split(data_dir, "test")
        self.root = root
        self.cameras = cameras
        self.drift = drift
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.pool = EVAL_COUNT + rng.permutation(len(self.split.labels) - EVAL_COUNT)
        self.used = 0

    @property
    def left(self) -> int:
        return len(self.pool) - self.used

    def take(
        self, name: str, per_device: int, drifted: bool, cameras: list[str] | None = None
    ) -> PhaseFrames:
        """The next ``per_device`` frames for each camera, drifted or not."""
        cameras = cameras or self.cameras
        wanted = per_device * len(cameras)
        if per_device < 1 or wanted > self.left:
            raise EdgeCascadeError(
                f"phase {name} needs {wanted} frames ({per_device} for each of {len(cameras)} "
                f"cameras); {self.left} of the {len(self.pool)} camera frames are left: "
                "use fewer frames per phase"
            )
        folders = {}
        rng = np.random.default_rng([self.seed, self.used])
        for camera in cameras:
            indices = self.pool[self.used : self.used + per_device]
            self.used += per_device
            dest = self.root / name / camera
            folders[camera] = write_folder(
                dest, self.split, indices, self.drift if drifted else None, rng
            )
        return PhaseFrames(name, folders, per_device, drifted)

    def drifted_eval(self) -> Path:
        """The evaluation sample under the drift (the same frames every run with one seed)."""
        rng = np.random.default_rng([self.seed, 1 << 20])
        return write_folder(
            self.root / "eval-drifted", self.split, np.arange(EVAL_COUNT), self.drift, rng
        )
