"""The ``fashion`` pair: a ~9k-parameter edge CNN and a ~0.6M-parameter cloud CNN on Fashion-MNIST.

Data: Debian's ``dataset-fashion-mnist`` (IDX files, MIT licence). Both networks are trained here
on the CPU with fixed seeds, exported with litert-torch (raw 0..255 NHWC pixels in, logits out; the
scaling and the permute are inside the graph), quantized to int8 with ai-edge-quantizer and
evaluated on the full 10,000-image test split through the LiteRT interpreter.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecascade.modelzoo import robust
from edgecascade.modelzoo.architectures import ARCHITECTURES, FASHION_MEAN, FASHION_STD
from edgecascade.modelzoo.drift import DEFAULT_DRIFT, apply_drift
from edgecascade.modelzoo.export import quantize_int8, require_training_stack, to_tflite
from edgecascade.modelzoo.idx import read_idx
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, ModelMetrics, Preprocess, TrainableSource

logger = logging.getLogger(__name__)

LABELS = [
    "tshirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCE = "Fashion-MNIST (Zalando Research) via Debian package dataset-fashion-mnist"
LICENSE = "data: MIT (Zalando SE); weights trained here: Apache-2.0"
MEAN, STD = FASHION_MEAN, FASHION_STD  # of the training split, applied inside the exported graph

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    images: Images  # N x 28 x 28
    labels: Labels


def load_split(data_dir: Path, split: str) -> Split:
    prefix = "train" if split == "train" else "t10k"
    images_path = data_dir / f"{prefix}-images-idx3-ubyte.gz"
    if not images_path.exists():
        raise ModelError(
            f"{images_path} not found: apt-get install dataset-fashion-mnist (or pass --data-dir)"
        )
    images = read_idx(images_path).astype(np.uint8)
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ModelError(f"{images_path}: unexpected shape {images.shape} / {labels.shape}")
    return Split(images, labels)


EDGE_ARCHITECTURE, CLOUD_ARCHITECTURE = "fashion-edge-cnn", "fashion-cloud-cnn"
EDGE_WEIGHTS = "fashion_edge.pt"


def build_networks() -> dict[str, Any]:
    """The networks, each taking raw NHWC pixels and returning logits (edge built first, the
    robust cloud network last: the seeded initial weights depend on the order)."""
    return {
        "edge": ARCHITECTURES[EDGE_ARCHITECTURE].build(),
        "cloud": ARCHITECTURES[CLOUD_ARCHITECTURE].build(),
        "cloud-robust": ARCHITECTURES[CLOUD_ARCHITECTURE].build(),
    }


def save_weights(net: Any, path: Path) -> TrainableSource:
    """Write the network's state_dict; the card's ``trainable`` entry pointing at it."""
    import torch

    torch.save(net.state_dict(), path)
    return TrainableSource(
        architecture=EDGE_ARCHITECTURE,
        weights=path.name,
        weights_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def train(
    net: Any,
    train: Split,
    test: Split,
    epochs: int,
    lr: float,
    name: str,
    augment: Callable[[], Images] | None = None,
) -> float:
    """Adam with a one-cycle schedule and horizontal flips; returns float test accuracy.

    ``augment``, when given, returns each epoch's copy of the training images."""
    import torch

    torch.manual_seed(0)
    x = torch.from_numpy(train.images.astype(np.float32))[..., None]
    y = torch.from_numpy(train.labels)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        started, total = time.monotonic(), 0.0
        if augment is not None:
            x = torch.from_numpy(augment().astype(np.float32))[..., None]
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            idx = order[start : start + 128]
            batch = x[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            batch[flip] = batch[flip].flip(2)
            optimizer.zero_grad()
            loss = loss_fn(net(batch), y[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        accuracy = torch_accuracy(net, test)
        logger.info(
            "%s epoch %d/%d: loss %.4f, test accuracy %.4f (%.0fs)",
            name,
            epoch + 1,
            epochs,
            total / len(x),
            accuracy,
            time.monotonic() - started,
        )
    return accuracy


def torch_accuracy(net: Any, split: Split) -> float:
    import torch

    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(split.images.astype(np.float32))[..., None]
        predicted = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((predicted.numpy() == split.labels).mean())


def litert_metrics(model: bytes, card: ModelCard, test: Split) -> dict[str, float]:
    """Top-1 accuracy on the whole test split and the median invoke time, via LiteRT."""
    from edgecascade.shared.runtime.runtime import ModelRuntime

    runtime = ModelRuntime.from_bytes(model, card.name, card, num_threads=2)
    correct, invoke = 0, []
    for image, label in zip(test.images, test.labels, strict=True):
        result = runtime.classify(image)
        correct += int(result.top(1)[0][0] == label)
        invoke.append(result.timings_ms["invoke"])
    return {"accuracy": correct / len(test.labels), "latency_ms_p50": float(np.median(invoke))}


BUILD_COMMAND = "edgecascade models build fashion"


@dataclass(frozen=True)
class Role:
    """How one network of the pair is trained and written."""

    lr: float
    kinds: tuple[str, ...]  # int8 always; the edge model also as fp32 (small enough to commit)
    augmented: bool = False  # drift augmentation (modelzoo/robust.py), drifted calibration


ROLES = {
    "edge": Role(3e-3, ("int8", "fp32")),
    "cloud": Role(2e-3, ("int8",)),
    "cloud-robust": Role(2e-3, ("int8",), augmented=True),
}


def build(
    output_dir: Path,
    data_dir: Path,
    epochs_edge: int,
    epochs_cloud: int,
    roles: tuple[str, ...] = ("edge", "cloud"),
    *,
    epochs_robust: int,
) -> dict[str, ModelCard]:
    """Train, export, quantize, evaluate and write the models of ``roles`` with their cards."""
    require_training_stack()
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)  # before the networks are built: their initial weights are random too
    train_split, test_split = load_split(data_dir, "train"), load_split(data_dir, "test")
    picked = np.random.default_rng(0).choice(len(train_split.images), 500, replace=False)
    epochs = {"edge": epochs_edge, "cloud": epochs_cloud, "cloud-robust": epochs_robust}
    output_dir.mkdir(parents=True, exist_ok=True)
    cards = {}
    for role, net in build_networks().items():
        if role in roles:
            built = Built(role, net, epochs[role], output_dir)
            cards.update(build_role(built, train_split, test_split, train_split.images[picked]))
    return cards


@dataclass(frozen=True)
class Built:
    """One network being built: its role, the module, its epochs and where it goes."""

    role: str
    net: Any
    epochs: int
    output_dir: Path


def build_role(
    built: Built, train_split: Split, test_split: Split, calibration: Images
) -> dict[str, ModelCard]:
    """Train one network, export and quantize it, measure it and write each kind with its card."""
    role, net, settings = built.role, built.net, ROLES[built.role]
    params = sum(p.numel() for p in net.parameters())
    logger.info("training %s network (%d parameters, %d epochs)", role, params, built.epochs)
    augment_rng = np.random.default_rng(0)
    augment = (
        (lambda: robust.augment(train_split.images, augment_rng)) if settings.augmented else None
    )
    float_accuracy = train(net, train_split, test_split, built.epochs, settings.lr, role, augment)
    trainable = save_weights(net, built.output_dir / EDGE_WEIGHTS) if role == "edge" else None
    if settings.augmented:  # the drifted frames' range too, or they clip
        drifted = robust.augment(calibration, np.random.default_rng(1), probability=1.0)
        calibration = np.concatenate([calibration, drifted])
    frames = [image.astype(np.float32)[None, :, :, None] for image in calibration]
    float_model = to_tflite(net, frames[0])
    int8_model = quantize_int8(float_model, frames)
    command = BUILD_COMMAND
    if settings.augmented:
        command += f" --roles {role} --epochs-robust {built.epochs}"
    card = ModelCard(
        name=f"fashion-{role}",
        version="1.0.0",
        labels=LABELS,
        output="logits",
        preprocess=Preprocess(resize="stretch", color="gray", mean=0.0, std=1.0),
        source=SOURCE,
        license=LICENSE,
        build_command=command,
        trainable=trainable,
    )
    kinds = {"int8": int8_model, "fp32": float_model}
    extra = {
        "parameters": params,
        "float_accuracy": round(float_accuracy, 4),
        "epochs": built.epochs,
    }
    if settings.augmented:
        extra["augmentation"] = robust.AUGMENTATION
        extra["accuracy_default_drift"] = round(drifted_accuracy(int8_model, card, test_split), 4)
    return {
        f"{role}_{kind}": write_model(
            built.output_dir / f"fashion_{role.replace('-', '_')}_{kind}.tflite",
            kinds[kind],
            card,
            test_split,
            extra,
        )
        for kind in settings.kinds
    }


def drifted_accuracy(model: bytes, card: ModelCard, test: Split) -> float:
    """Top-1 via LiteRT on the test split drifted by DEFAULT_DRIFT with ``default_rng(0)``."""
    rng = np.random.default_rng(0)
    images = np.stack([apply_drift(image, DEFAULT_DRIFT, rng) for image in test.images])
    return litert_metrics(model, card, Split(images, test.labels))["accuracy"]


def write_model(
    path: Path, content: bytes, card: ModelCard, test: Split, extra: dict[str, Any]
) -> ModelCard:
    """Measure one exported model through LiteRT and write it with its card."""
    measured = litert_metrics(content, card, test)
    logger.info("%s: test accuracy %.4f", path.name, measured["accuracy"])
    written = card.model_copy(
        update={
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_bytes": len(content),
            "metrics": ModelMetrics(
                accuracy=round(measured["accuracy"], 4),
                eval_dataset="fashion-mnist test (10000)",
                latency_ms_p50=round(measured["latency_ms_p50"], 4),
                **extra,
            ),
        }
    )
    path.write_bytes(content)
    written.save(path.with_suffix(".json"))
    logger.info("wrote %s (%d bytes)", path, len(content))
    return written


def write_sample(dest: Path, data_dir: Path, count: int) -> int:
    """The first ``count`` test images as PNGs in ImageFolder layout ``<label>/<index>.png``."""
    import cv2

    test = load_split(data_dir, "test")
    for index in range(min(count, len(test.labels))):
        path = dest / LABELS[int(test.labels[index])] / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), test.images[index]):
            raise ModelError(f"cannot write {path}")
    return min(count, len(test.labels))
