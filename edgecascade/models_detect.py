"""``edgecascade models detect``: run a detection model on image files, print and save boxes.

The quickest check of a detection model and its card: the boxes it finds on a few photos, in
pixels of each photo (the model's letterbox or crop undone), as a table and optionally as JSON
``[{"image": path, "detections": [{"label", "score", "box": [x0, y0, x1, y1]}]}]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgecascade.shared.errors import EdgeCascadeError


def add_detect_parser(models: Any) -> None:
    parser = models.add_parser(
        "detect",
        help="run a detection model on images: a table, and JSON with --output",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, help="a .tflite detection model with its card")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the boxes as JSON")
    parser.add_argument(
        "--threshold",
        type=float,
        help="score threshold, 0..1 (default: the card's detection.score_threshold)",
    )
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (2)")
    parser.set_defaults(func=run_detect)


def read_image(path: Path) -> Any:
    """A BGR image, or an error naming the file and what is wrong with it."""
    import cv2
    import numpy as np

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EdgeCascadeError(f"{path}: no such image file") from None
    except OSError as exc:
        raise EdgeCascadeError(f"{path}: cannot read: {exc.strerror}") from exc
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise EdgeCascadeError(
            f"{path}: not an image OpenCV can decode ({len(data)} bytes starting {data[:8]!r})"
        )
    return image


def detect_images(
    model: Path, images: list[Path], threshold: float | None = None, threads: int = 2
) -> list[dict[str, Any]]:
    """``[{"image", "detections": [{"label", "score", "box"}]}]`` for each image, in order."""
    from edgecascade.shared.runtime.card import ModelCard, card_path_for
    from edgecascade.shared.runtime.detector import Detector

    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise EdgeCascadeError(f"--threshold {threshold} is not a score between 0 and 1")
    card = None
    if threshold is not None and card_path_for(model).exists():
        card = ModelCard.load(card_path_for(model))
        if card.detection is not None:
            spec = card.detection.model_copy(update={"score_threshold": threshold})
            card = card.model_copy(update={"detection": spec})
    detector = Detector.load(model, num_threads=threads, card=card)
    decoded = [(path, read_image(path)) for path in images]  # every file checked first
    out = []
    for path, image in decoded:
        found = detector.detect(image).detections
        out.append({"image": str(path), "detections": [d.as_dict() for d in found]})
    return out


def run_detect(args: argparse.Namespace) -> int:
    from edgecascade.benchmarks.table import format_table

    report = detect_images(args.model, args.images, args.threshold, args.threads)
    rows = []
    for entry in report:
        if not entry["detections"]:
            rows.append([entry["image"], "-", "-", "nothing found"])
        for d in entry["detections"]:
            box = ", ".join(f"{v:.0f}" for v in d["box"])
            rows.append([entry["image"], d["label"], f"{d['score']:.3f}", f"[{box}]"])
    sys.stdout.write(format_table(["image", "label", "score", "box x0, y0, x1, y1"], rows) + "\n")
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        sys.stdout.write(f"wrote {args.output}\n")
    return 0
