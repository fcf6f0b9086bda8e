"""The imagenet demo's photographs: real photos that ship inside Python packages, written as JPEG.

No labelled ImageNet set can be had offline, and nothing may be fetched at run time, so the demo
replays the few real photographs that scikit-image, scikit-learn and matplotlib ship, each with its
licence as the package states it. A photo whose ImageNet class is plain goes in a folder named
after that class's label (the models' label string, so the agent's ground truth compares); the
others sit at the folder's root, unlabelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Photo:
    name: str
    label: str | None  # an ImageNet label string when the true class is plain
    source: str
    licence: str


def _skimage(name: str) -> Callable[[], npt.NDArray[np.uint8]]:
    def load() -> npt.NDArray[np.uint8]:
        import skimage.data

        return np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)

    return load


def _sklearn(name: str) -> Callable[[], npt.NDArray[np.uint8]]:
    def load() -> npt.NDArray[np.uint8]:
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(name), dtype=np.uint8)

    return load


def _grace_hopper() -> npt.NDArray[np.uint8]:
    import cv2
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"matplotlib's sample photo {path} is missing or unreadable")
    return np.ascontiguousarray(bgr[:, :, ::-1])


SKIMAGE = "scikit-image (skimage/data/{}, the skimage.data.{} docstring states the licence)"
SKLEARN = "scikit-learn (sklearn/datasets/images/{}, licence in that folder's README.txt)"
PHOTOS: dict[Photo, Callable[[], npt.NDArray[np.uint8]]] = {
    Photo(
        "chelsea",
        "tabby cat",
        SKIMAGE.format("chelsea.png", "chelsea"),
        "CC0 (Stefan van der Walt)",
    ): _skimage("chelsea"),
    Photo(
        "coffee", "espresso", SKIMAGE.format("coffee.png", "coffee"), "CC0 (Rachel Michetti)"
    ): _skimage("coffee"),
    Photo(
        "grace_hopper",
        "military uniform",
        "matplotlib (matplotlib/mpl-data/sample_data/grace_hopper.jpg)",
        "public domain: an official U.S. Navy photograph, a work of the U.S. federal government "
        "(matplotlib's sample_data README states no licence)",
    ): _grace_hopper,
    Photo(
        "astronaut",
        None,
        SKIMAGE.format("astronaut.png", "astronaut"),
        "public domain (NASA; no known copyright restrictions)",
    ): _skimage("astronaut"),
    Photo(
        "rocket", None, SKIMAGE.format("rocket.jpg", "rocket"), "public domain (SpaceX)"
    ): _skimage("rocket"),
    Photo(
        "china",
        None,
        SKLEARN.format("china.jpg"),
        "CC BY 2.0, danielbuechele on Flickr (photo 6061409035)",
    ): _sklearn("china.jpg"),
    Photo(
        "flower",
        None,
        SKLEARN.format("flower.jpg"),
        "CC BY 2.0, vultilion on Flickr (photo 6056698931; the README's attribution line "
        "repeats danielbuechele, its link names vultilion)",
    ): _sklearn("flower.jpg"),
}


def write_photos(dest: Path) -> list[Path]:
    """Every photo as ``dest/[<label>/]<name>.jpg`` (RGB, quality 90) and ``dest/README.md``."""
    import cv2

    written = []
    for photo, load in PHOTOS.items():
        path = dest / (photo.label or "") / f"{photo.name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = np.ascontiguousarray(load()[:, :, ::-1])
        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        written.append(path)
    (dest / "README.md").write_text(readme())
    return written


def readme() -> str:
    rows = "".join(
        f"| `{(p.label + '/') if p.label else ''}{p.name}.jpg` | {p.label or '(unlabelled)'} "
        f"| {p.source} | {p.licence} |\n"
        for p in PHOTOS
    )
    return (
        "# ImageNet demo photos\n\n"
        "Real photographs that ship inside Python packages (nothing is fetched), re-encoded as "
        f"JPEG (quality {JPEG_QUALITY}) at their shipped size. A photo whose ImageNet class is "
        "plain sits in a folder named after that class's label, the models' label string, so "
        "the cameras report it as the frame's ground truth; the others sit at the root, "
        "unlabelled. `scripts/demo --pair imagenet` replays them.\n\n"
        "Made by `edgecascade models build imagenet` (`--photos-dir`, default this folder; "
        "modelzoo/photos.py lists them).\n\n"
        "| file | ImageNet label | from the package | licence |\n|---|---|---|---|\n" + rows
    )
