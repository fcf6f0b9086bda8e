"""``edgecascade models convert``: every variant converted, measured side by side and written.

Each variant is measured through :class:`~edgecascade.shared.runtime.runtime.ModelRuntime` with
the card written for it (the runtime's preprocessing, the same the agent uses): top-1 on the
labelled ``--eval`` folder, agreement of its top-1 with float32's, invoke latency p50. Nothing is
written until every variant is converted and measured; then the files go to a staging folder
beside ``--out`` and are renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo.convert_cli import ConvertSpec
from edgecascade.modelzoo.convert_source import Network, float_tflite, load_network, prune, quantize
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, ModelMetrics, Preprocess, card_path_for
from edgecascade.shared.runtime.datasets import IMAGE_SUFFIXES, LabelledFolder
from edgecascade.shared.runtime.runtime import ModelRuntime

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
T = TypeVar("T")
WARMUP = 5
LATENCY_RUNS = 50  # invokes timed when there is no --eval folder


@dataclass
class Variant:
    name: str
    content: bytes
    card: ModelCard
    sparsity: float | None = None
    accuracy: float | None = None
    agreement: float | None = None
    latency_ms_p50: float = 0.0

    @property
    def filename(self) -> str:
        return f"{self.card.name}_{self.name}.tflite"


def read_calibration(folder: Path, count: int) -> list[Image]:
    """``count`` image files under ``folder``, spread evenly over them in sorted order (every
    class of an ImageFolder); ModelError naming one that cannot be decoded as an 8-bit image."""
    import cv2

    files = spread(
        sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), count
    )
    if not files:
        raise ModelError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ModelError(f"{path}: cannot be decoded as an image (corrupt or not an image)")
        if image.dtype != np.uint8:
            raise ModelError(f"{path}: {image.dtype} pixels; calibration takes 8-bit images")
        images.append(image.astype(np.uint8, copy=False))
    return images


def spread(items: list[T], count: int | None) -> list[T]:
    """At most ``count`` of ``items``, evenly spaced (all of them when there are fewer)."""
    if count is None or len(items) <= count:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count)]


def read_labels(path: Path | None, classes: int) -> list[str]:
    """Class names from a text file (one a line) or a model card (.json)."""
    if path is None:
        return []
    if path.suffix == ".json":
        names = ModelCard.load(path).labels
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read the labels file: {exc}") from exc
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != classes:
        raise ModelError(f"{path}: lists {len(names)} labels but the model has {classes} outputs")
    return names


def base_card(spec: ConvertSpec, network: Network) -> ModelCard:
    source = spec.source.name if spec.source else f"{spec.architecture} ({spec.weights})"
    return ModelCard(
        name=spec.name,
        version=spec.version,
        preprocess=Preprocess(
            color="gray" if network.input_shape[2] == 1 else "rgb", mean=spec.mean, std=spec.std
        ),
        source=f"converted from {source} by litert-torch",
        build_command=spec.command,
    )


def convert(spec: ConvertSpec) -> list[Variant]:
    """Convert, measure, then write every variant of ``spec``."""
    _check_free(spec)
    calibration = (
        read_calibration(spec.calibration, spec.calibration_count) if spec.calibration else []
    )
    network = load_network(spec)
    float_model = float_tflite(network)
    card = base_card(spec, network)
    reference = ModelRuntime.from_bytes(float_model, "float32", card, num_threads=spec.threads)
    card = card.model_copy(update={"labels": read_labels(spec.labels, reference.num_classes)})
    reference = ModelRuntime.from_bytes(float_model, "float32", card, num_threads=spec.threads)
    tensors = [reference.preprocess(image).astype(np.float32) for image in calibration]
    floats: dict[bool, tuple[bytes, float | None]] = {False: (float_model, None)}
    if spec.prune is not None:
        pruned, share = prune(network.module, spec.prune)
        logger.info("pruned to sparsity %.4f", share)
        floats[True] = (float_tflite(network, pruned), share)
    variants = []
    for name in spec.variants:
        base = name.removeprefix("pruned-")
        model, sparsity = floats[name != base]
        content = quantize(model, base, tensors, spec.int8_io)
        variants.append(Variant(name, content, card, sparsity))
    measure(variants, spec, reference.labels)
    publish(variants, spec.out)
    return variants


def _check_free(spec: ConvertSpec) -> None:
    for name in spec.variants:
        model = spec.out / f"{spec.name}_{name}.tflite"
        for path in (model, card_path_for(model)):
            if path.exists():
                raise ModelError(f"{path} exists already; remove it or choose another --out")


def measure(variants: list[Variant], spec: ConvertSpec, labels: tuple[str, ...]) -> None:
    """Top-1, agreement with float32 (or the first variant) and invoke p50 of each variant."""
    samples: list[tuple[Image, int]] = []
    if spec.eval_dir is not None:
        folder = LabelledFolder(spec.eval_dir, labels)
        folder.items = spread(folder.items, spec.eval_count)
        samples = [(image, target) for _path, image, target in folder]
        if not samples:
            raise ModelError(f"{spec.eval_dir}: no readable images to evaluate on")
    reference: list[int] | None = None
    for variant in sorted(variants, key=lambda v: v.name != "float32"):
        runtime = ModelRuntime.from_bytes(
            variant.content, variant.filename, variant.card, num_threads=spec.threads
        )
        tops, timings = _run(runtime, samples)
        if samples:
            targets = [t for _, t in samples]
            variant.accuracy = round(float(np.mean(np.equal(tops, targets))), 4)
            reference = reference if reference is not None else tops
            variant.agreement = round(float(np.mean(np.equal(tops, reference))), 4)
        variant.latency_ms_p50 = round(float(np.percentile(timings, 50)), 4)
        variant.card = _card_for(variant, spec)


def _run(runtime: ModelRuntime, samples: list[tuple[Image, int]]) -> tuple[list[int], list[float]]:
    spec = runtime.input_spec
    blank = np.zeros((spec.height, spec.width, spec.channels), np.uint8)
    first = samples[0][0] if samples else blank
    for _ in range(WARMUP):
        runtime.classify(first)
    tops, timings = [], []
    for image in [s[0] for s in samples] or [blank] * LATENCY_RUNS:
        result = runtime.classify(image)
        tops.append(result.top(1)[0][0])
        timings.append(result.timings_ms["invoke"])
    return tops, timings


def _card_for(variant: Variant, spec: ConvertSpec) -> ModelCard:
    extra: dict[str, object] = {
        "variant": variant.name,
        "gzip_size_bytes": len(zlib.compress(variant.content, 9)),
        "latency_threads": spec.threads,
    }
    if variant.agreement is not None:
        extra["float32_top1_agreement"] = variant.agreement
    if variant.sparsity is not None:
        extra["sparsity"] = round(variant.sparsity, 4)
    evaluated = None
    if spec.eval_dir is not None:
        evaluated = f"{spec.eval_dir.name} ({spec.eval_count or 'all'} images)"
    return variant.card.model_copy(
        update={
            "sha256": hashlib.sha256(variant.content).hexdigest(),
            "size_bytes": len(variant.content),
            "metrics": ModelMetrics(
                accuracy=variant.accuracy,
                eval_dataset=evaluated,
                latency_ms_p50=variant.latency_ms_p50,
                **extra,
            ),
        }
    )


def publish(variants: list[Variant], out: Path) -> None:
    """Write every model and card to a staging folder beside ``out``, then rename them in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would become the model folder's mode
    placed: list[Path] = []
    try:
        names = []
        for variant in variants:
            (staging / variant.filename).write_bytes(variant.content)
            variant.card.save(card_path_for(staging / variant.filename))
            names += [variant.filename, card_path_for(Path(variant.filename)).name]
        if not out.exists():
            os.replace(staging, out)
            return
        for name in names:
            os.replace(staging / name, out / name)
            placed.append(out / name)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def format_table(variants: list[Variant], spec: ConvertSpec) -> str:
    evaluated = f"top-1 on {spec.eval_dir.name}" if spec.eval_dir else "top-1"
    header = (
        f"{'variant':<20} {'size (B)':>9} {'gzip (B)':>9} {evaluated:>24} "
        f"{'agree f32':>9} {'p50 ms':>8} {'sparsity':>8}"
    )
    lines = [header]
    for v in variants:
        gzip = (v.card.metrics.model_extra or {}).get("gzip_size_bytes", "-")
        lines.append(
            f"{v.name:<20} {len(v.content):>9} {gzip:>9} "
            f"{_fmt(v.accuracy):>24} {_fmt(v.agreement):>9} {v.latency_ms_p50:>8.4f} "
            f"{_fmt(v.sparsity):>8}"
        )
    lines.append(f"written to {spec.out}: " + ", ".join(v.filename for v in variants))
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
