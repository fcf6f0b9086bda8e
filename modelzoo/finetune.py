"""Fine-tune an edge model on the cloud's verdicts: distillation plus replay, int8, evaluated.

The parent is rebuilt from its trainable source (the card's ``trainable``: an architecture of
:mod:`modelzoo.architectures` and a state_dict), trained on the dataset's ``train`` samples with

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(label)

where the teacher is the cloud's soft distribution (sharpened or softened by T like logits / T);
a sample labelled by a person, or without soft targets, is trained with CE on its label alone.
Each batch mixes in ``replay_fraction`` frames of the architecture's original training data with
their true labels, so the model learns the new scene without forgetting the old one. The child is
quantized to int8 calibrated on dataset frames plus some replay frames, and both parent and child
``.tflite`` are measured through the LiteRT runtime on the dataset's held-out slice and on the
original evaluation set: the figures the ship gates (:mod:`cloud.training_gates`) decide on.

torch is imported inside the functions; a seed makes a run repeatable.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edgecascade.cloud.dataset import (
    DatasetManifest,
    LabelSource,
    Sample,
    SampleSplit,
    read_dataset,
)
from edgecascade.cloud.training_gates import TrainingResult
from edgecascade.modelzoo.architectures import Architecture, architecture
from edgecascade.modelzoo.export import quantize_int8, require_training_stack, to_tflite
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import LineageMetrics, ModelCard
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.evaluate import evaluate
from edgecascade.shared.runtime.preprocess import fit, to_channels
from edgecascade.shared.runtime.runtime import ModelRuntime

logger = logging.getLogger(__name__)

Pixels = npt.NDArray[np.uint8]  # N x H x W x C raw pixels, what the torch module takes


class FinetuneOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(20, ge=1, description="Passes over the dataset's train samples.")
    batch_size: int = Field(64, ge=2, description="Frames per batch, replay included.")
    lr: float = Field(1e-3, gt=0.0, description="Adam learning rate.")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="Weight of the distillation term.")
    temperature: float = Field(2.0, gt=0.0, description="Distillation temperature T.")
    replay_fraction: float = Field(
        0.75, ge=0.0, lt=1.0, description="Share of each batch from the original training data."
    )
    seed: int = Field(0, description="Seeds torch and numpy: same inputs, same child.")
    calibration_frames: int = Field(300, ge=1, description="int8 calibration frames.")
    replay_dir: Path | None = Field(None, description="The original training data's folder.")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="The learning rate: constant, or cosine decay to 0 over the run."
    )


@dataclass(frozen=True)
class Child:
    int8_model: bytes
    weights: bytes  # torch state_dict
    result: TrainingResult


@dataclass(frozen=True)
class Parent:
    path: Path
    card: ModelCard
    architecture: Architecture
    weights: Path


def load_parent(path: Path) -> Parent:
    """The parent's card and trainable source; refused by name when it has none."""
    card = ModelCard.load(path.with_suffix(".json"))
    if card.trainable is None:
        raise ModelError(
            f"{path}: model {card.name}@{card.version} has no trainable source (no 'trainable' "
            "in its card), so it cannot be fine-tuned"
        )
    weights = path.parent / card.trainable.weights
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"{weights}: cannot read the weights of {card.name}: {exc}") from exc
    if digest != card.trainable.weights_sha256:
        raise ModelError(f"{weights}: sha256 {digest} differs from the card's weights_sha256")
    return Parent(path, card, architecture(card.trainable.architecture), weights)


def check_labels(parent: Parent, manifest: DatasetManifest) -> None:
    if manifest.labels != parent.card.labels:
        raise ModelError(
            f"dataset {manifest.snapshot_id} has labels {manifest.labels}, model "
            f"{parent.card.name} has {parent.card.labels}"
        )


def frames(directory: Path, samples: list[Sample], arch: Architecture, card: ModelCard) -> Pixels:
    """Decoded frames fitted to the network's input, as the runtime would (card preprocess)."""
    import cv2

    h, w, c = arch.input_shape
    out = np.empty((len(samples), h, w, c), dtype=np.uint8)
    for i, sample in enumerate(samples):
        image = cv2.imread(str(directory / sample.file), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ModelError(f"{directory / sample.file}: cannot decode")
        out[i] = fit(to_channels(image, card.preprocess.color, c), h, w, card.preprocess)
    return out


def finetune(parent_path: Path, dataset_dir: Path, options: FinetuneOptions) -> Child:
    """Train, quantize and evaluate a child of ``parent_path`` on the dataset at ``dataset_dir``."""
    parent = load_parent(parent_path)
    manifest, samples = read_dataset(dataset_dir)
    check_labels(parent, manifest)
    require_training_stack()
    import torch

    started = time.monotonic()
    torch.manual_seed(options.seed)
    torch.set_num_threads(2)
    train = [s for s in samples if s.split is SampleSplit.TRAIN]
    held = [s for s in samples if s.split is SampleSplit.HOLDOUT]
    if not train:
        raise ModelError(f"dataset {manifest.snapshot_id} has no train samples")
    if parent.architecture.replay is None:
        raise ModelError(f"architecture {parent.architecture.id} has no replay data")
    replay_x, replay_y = parent.architecture.replay(options.replay_dir)
    net = parent.architecture.build()
    net.load_state_dict(torch.load(parent.weights, weights_only=True))
    x = frames(dataset_dir, train, parent.architecture, parent.card)
    seen = train_loop(net, x, train, replay_x, replay_y, options, parent.architecture.mirror)
    rng = np.random.default_rng(options.seed)
    calibration = [*x[rng.permutation(len(x))[: options.calibration_frames // 2]]]
    calibration += [*replay_x[rng.choice(len(replay_x), options.calibration_frames // 2)]]
    float_model = to_tflite(net, calibration[0].astype(np.float32)[None])
    child = quantize_int8(float_model, [f.astype(np.float32)[None] for f in calibration])
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    before = measure(parent_path.read_bytes(), parent, dataset_dir, held)
    after = measure(child, parent, dataset_dir, held)
    result = TrainingResult(
        before=before,
        after=after,
        train_samples=len(train),
        holdout_samples=len(held),
        replay_samples_seen=seen,
        original_eval_dataset=original_eval_name(parent.architecture),
        epochs=options.epochs,
        seconds=round(time.monotonic() - started, 1),
    )
    return Child(child, buffer.getvalue(), result)


def train_loop(
    net: Any,
    x: Pixels,
    samples: list[Sample],
    replay_x: Pixels,
    replay_y: npt.NDArray[np.int64],
    options: FinetuneOptions,
    mirror: bool = False,
) -> int:
    """Adam over the dataset with replay mixed into every batch; returns replay frames seen.
    With ``mirror`` half of each batch's frames are flipped left-right (labels unchanged)."""
    import torch
    from torch.nn import functional

    targets, soft, distil = sample_targets(samples)
    inputs = torch.from_numpy(x.astype(np.float32))
    replay = torch.from_numpy(replay_x.astype(np.float32)), torch.from_numpy(replay_y)
    per_batch = max(1, round(options.batch_size * (1.0 - options.replay_fraction)))
    n_replay = options.batch_size - per_batch if options.replay_fraction else 0
    generator = torch.Generator().manual_seed(options.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
    schedule = lr_schedule(optimizer, options, options.epochs * -(-len(inputs) // per_batch))
    seen = 0
    for epoch in range(options.epochs):
        net.train()
        started, total, count, hits = time.monotonic(), 0.0, 0, 0
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), per_batch):
            idx = order[start : start + per_batch]
            pick = torch.randint(len(replay[0]), (n_replay,), generator=generator)
            batch = torch.cat([inputs[idx], replay[0][pick]])
            logits = net(mirrored(batch, generator) if mirror else batch)
            own, old = logits[: len(idx)], logits[len(idx) :]
            loss = sample_loss(own, targets[idx], soft[idx], distil[idx], options)
            if n_replay:
                replayed = functional.cross_entropy(old, replay[1][pick], reduction="none")
                loss = torch.cat([loss, replayed])
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += float(loss.detach().sum())
            count += len(loss)
            hits += int((own.argmax(1) == targets[idx]).sum())
            seen += n_replay
        logger.info(
            "epoch %d/%d: loss %.4f, train accuracy %.4f (%d samples + replay, %.1fs)",
            epoch + 1,
            options.epochs,
            total / count,
            hits / len(inputs),
            len(inputs),
            time.monotonic() - started,
        )
    net.eval()
    return seen


def sample_targets(samples: list[Sample]) -> tuple[Any, Any, Any]:
    """Per sample: the label index, the soft targets (uniform where there are none) and whether
    it is distilled (the cloud's soft targets) rather than trained on its label alone."""
    import torch

    targets = torch.tensor([s.label_index for s in samples])
    n_labels = len(samples[0].soft) if samples[0].soft is not None else int(targets.max()) + 1
    soft = torch.tensor(
        [s.soft if s.soft is not None else [1.0 / n_labels] * n_labels for s in samples]
    )
    distil = torch.tensor(
        [s.soft is not None and s.label_source is LabelSource.CLOUD for s in samples]
    )
    return targets, soft, distil


def lr_schedule(optimizer: Any, options: FinetuneOptions, steps: int) -> Any:
    """Cosine decay to 0 over ``steps``, or None for a constant rate."""
    import torch

    if options.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def mirrored(batch: Any, generator: Any) -> Any:
    """The NHWC batch with about half its frames flipped left-right."""
    import torch

    flip = torch.rand(len(batch), generator=generator) < 0.5
    batch[flip] = batch[flip].flip(2)
    return batch


def sample_loss(logits: Any, labels: Any, soft: Any, distil: Any, options: FinetuneOptions) -> Any:
    """Per-sample loss: alpha * T^2 * KL + (1 - alpha) * CE where distilled, else CE."""
    import torch
    from torch.nn import functional

    t = options.temperature
    ce = functional.cross_entropy(logits, labels, reduction="none")
    teacher = torch.softmax(torch.log(soft.clamp_min(1e-8)) / t, dim=1)
    student = torch.log_softmax(logits / t, dim=1)
    kl = (teacher * (torch.log(teacher.clamp_min(1e-8)) - student)).sum(1) * t * t
    mixed = options.alpha * kl + (1.0 - options.alpha) * ce
    return torch.where(distil, mixed, ce)


def measure(model: bytes, parent: Parent, dataset_dir: Path, held: list[Sample]) -> LineageMetrics:
    """Top-1 through LiteRT on the held-out samples and on the original evaluation set."""
    import cv2

    runtime = ModelRuntime.from_bytes(model, parent.card.name, parent.card, num_threads=2)
    hits = 0
    for sample in held:
        image = cv2.imread(str(dataset_dir / sample.file), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ModelError(f"{dataset_dir / sample.file}: cannot decode")
        pixels = np.asarray(image, dtype=np.uint8)
        hits += int(runtime.classify(pixels).top(1)[0][0] == sample.label_index)
    original = parent.architecture.original_eval
    if original is None:
        raise ModelError(f"architecture {parent.architecture.id} has no original evaluation set")
    report = evaluate(runtime, LabelledFolder(original, runtime.labels), progress_every=10**9)
    return LineageMetrics(
        holdout_accuracy=round(hits / len(held), 4) if held else None,
        original_accuracy=round(report.top1_accuracy, 4),
    )


def original_eval_name(arch: Architecture) -> str:
    if arch.original_eval is None:
        return ""
    return f"{arch.original_eval.name} ({sum(1 for p in arch.original_eval.rglob('*.png'))})"
