"""Labelled image folders (ImageFolder layout: ``<root>/<class>/<image>``).

``<class>`` is one of the model's labels or an output index. Files that cannot be decoded as
images are skipped and counted, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgecascade.shared.errors import ModelError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})


@dataclass
class LabelledFolder:
    """Images and their class index, in sorted (deterministic) order."""

    root: Path
    labels: Sequence[str]
    limit: int | None = None
    skipped: list[Path] = field(default_factory=list)
    items: list[tuple[Path, int]] = field(init=False)

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise ModelError(f"dataset {self.root} is not a directory")
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        if not class_dirs:
            raise ModelError(f"dataset {self.root} has no class folders (<root>/<class>/<image>)")
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = []
        items = []
        for class_dir in class_dirs:
            name = class_dir.name
            if name in index:
                target = index[name]
            elif name.isdigit() and int(name) < len(self.labels):
                target = int(name)
            else:
                unknown.append(name)
                continue
            items += [(p, target) for p in sorted(class_dir.iterdir()) if p.is_file()]
        if unknown:
            raise ModelError(
                f"dataset {self.root}: class folders {unknown} are neither labels of the model "
                f"nor output indexes below {len(self.labels)}"
            )
        self.items = items[: self.limit] if self.limit is not None else items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[tuple[Path, npt.NDArray[np.uint8], int]]:
        import cv2

        for path, target in self.items:
            image = None
            if path.suffix.lower() in IMAGE_SUFFIXES:
                image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None or image.dtype != np.uint8:
                self.skipped.append(path)
                logger.warning("skipped %s: not a readable 8-bit image", path)
                continue
            yield path, image.astype(np.uint8, copy=False), target
