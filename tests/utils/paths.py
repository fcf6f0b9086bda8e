"""Paths of the committed model and evaluation sample."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDGE_MODEL = REPO / "models" / "fashion" / "fashion_edge_int8.tflite"
EDGE_MODEL_FP32 = REPO / "models" / "fashion" / "fashion_edge_fp32.tflite"
CLOUD_MODEL = REPO / "models" / "fashion" / "fashion_cloud_int8.tflite"
CLOUD_ROBUST_MODEL = REPO / "models" / "fashion" / "fashion_cloud_robust_int8.tflite"
EVAL_SAMPLE = REPO / "data" / "fashion-mnist-eval"
IMAGENET_EDGE_MODEL = REPO / "models" / "imagenet" / "imagenet_edge_int8.tflite"
IMAGENET_PHOTOS = REPO / "data" / "imagenet-photos"


def sample_subset(dest: Path, per_class: int) -> list[Path]:
    """Copy ``per_class`` images of each class of the eval sample into ``dest`` (ImageFolder)."""
    import shutil

    copied = []
    for class_dir in sorted(p for p in EVAL_SAMPLE.iterdir() if p.is_dir()):
        for image in sorted(class_dir.glob("*.png"))[:per_class]:
            target = dest / class_dir.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target)
            copied.append(target)
    return copied


FACE_SHORT = REPO / "models" / "faces" / "face_short_range.tflite"
FACE_FULL = REPO / "models" / "faces" / "face_full_range.tflite"
FACE_SHORT_SSD = REPO / "models" / "faces" / "face_short_range_ssd.tflite"
PHOTOS = REPO / "data" / "photos"
