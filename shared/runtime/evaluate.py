"""``edgecascade models eval``: accuracy, confidence and latency of a classifier on a dataset."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.runtime.datasets import LabelledFolder
from edgecascade.shared.runtime.runtime import ModelRuntime

logger = logging.getLogger(__name__)

STAGES = ("preprocess", "invoke", "postprocess")


class ClassScore(BaseModel):
    correct: int
    total: int
    accuracy: float


class ConfidenceBin(BaseModel):
    low: float
    high: float
    count: int
    accuracy: float | None


class EvalReport(BaseModel):
    model: str
    model_path: str
    sha256: str
    description: str  # which source decided preprocessing and labels (card, metadata, ...)
    dataset: str
    images: int
    skipped: int
    top1_accuracy: float
    per_class: dict[str, ClassScore]
    confidence: list[ConfidenceBin]
    latency_ms: dict[str, dict[str, float]]
    wall_s: float


def evaluate(
    runtime: ModelRuntime, dataset: LabelledFolder, *, warmup: int = 5, progress_every: int = 500
) -> EvalReport:
    started = time.monotonic()
    _warm_up(runtime, dataset, warmup)
    targets, predicted, confidence = [], [], []
    timings: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for n, (_path, image, target) in enumerate(dataset, 1):
        result = runtime.classify(image)
        index, _label, score = result.top(1)[0]
        targets.append(target)
        predicted.append(index)
        confidence.append(score)
        for stage in STAGES:
            timings[stage].append(result.timings_ms[stage])
        if n % progress_every == 0:
            logger.info(
                "%d/%d images, accuracy so far %.4f",
                n,
                len(dataset),
                float(np.mean(np.equal(targets, predicted))),
            )
    t, c = np.array(targets), np.array(confidence)
    hit = t == np.array(predicted)
    return EvalReport(
        model=runtime.card.name,
        model_path=runtime.source,
        sha256=runtime.sha256,
        description=runtime.description.summary(),
        dataset=str(dataset.root),
        images=len(t),
        skipped=len(dataset.skipped),
        top1_accuracy=float(hit.mean()) if len(t) else 0.0,
        per_class=_per_class(runtime.labels, t, hit),
        confidence=_confidence_bins(c, hit),
        latency_ms=_latency(timings),
        wall_s=time.monotonic() - started,
    )


def _warm_up(runtime: ModelRuntime, dataset: LabelledFolder, times: int) -> None:
    """Classify the first image a few times: the first invocations are slow (allocation)."""
    if not dataset.items or not times:
        return
    import cv2

    first = cv2.imread(str(dataset.items[0][0]), cv2.IMREAD_UNCHANGED)
    if first is not None and first.dtype == np.uint8:
        for _ in range(times):
            runtime.classify(first.astype(np.uint8, copy=False))


def _per_class(
    labels: Sequence[str], targets: npt.NDArray[Any], hit: npt.NDArray[np.bool_]
) -> dict[str, ClassScore]:
    per_class = {}
    for i, label in enumerate(labels):
        mask = targets == i
        if mask.any():
            per_class[label] = ClassScore(
                correct=int(hit[mask].sum()),
                total=int(mask.sum()),
                accuracy=float(hit[mask].mean()),
            )
    return per_class


def _confidence_bins(
    confidence: npt.NDArray[Any], hit: npt.NDArray[np.bool_]
) -> list[ConfidenceBin]:
    """Accuracy per tenth of top-1 confidence (the last bin includes 1.0)."""
    bins = []
    edges = np.linspace(0.0, 1.0, 11)
    for low, high in itertools.pairwise(edges):
        mask = (confidence >= low) & ((confidence < high) if high < 1.0 else (confidence <= high))
        bins.append(
            ConfidenceBin(
                low=round(float(low), 2),
                high=round(float(high), 2),
                count=int(mask.sum()),
                accuracy=float(hit[mask].mean()) if mask.any() else None,
            )
        )
    return bins


def _latency(timings: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        stage: {
            "p50": float(np.percentile(values, 50)) if values else 0.0,
            "p95": float(np.percentile(values, 95)) if values else 0.0,
        }
        for stage, values in timings.items()
    }


def format_table(report: EvalReport) -> str:
    lines = [
        f"model     {report.model} ({report.model_path}, sha256 {report.sha256[:16]})",
        f"card      {report.description}",
        f"dataset   {report.dataset}: {report.images} images, {report.skipped} skipped",
        f"top-1     {report.top1_accuracy:.4f}",
        "latency   "
        + ", ".join(
            f"{stage} p50 {v['p50']:.3f} ms p95 {v['p95']:.3f} ms"
            for stage, v in report.latency_ms.items()
        ),
        "",
        f"{'class':<20} {'correct':>8} {'total':>6} {'accuracy':>9}",
    ]
    for label, score in report.per_class.items():
        lines.append(f"{label:<20} {score.correct:>8} {score.total:>6} {score.accuracy:>9.4f}")
    lines += ["", f"{'confidence':<20} {'images':>8} {'accuracy':>9}"]
    for b in report.confidence:
        accuracy = "-" if b.accuracy is None else f"{b.accuracy:.4f}"
        lines.append(f"{f'{b.low:.1f}-{b.high:.1f}':<20} {b.count:>8} {accuracy:>9}")
    return "\n".join(lines) + "\n"


def add_eval_parser(models: SubParsers[argparse.ArgumentParser]) -> None:
    parser = models.add_parser(
        "eval",
        help="measure a TFLite classifier on a labelled image folder",
        description=(
            "Run a .tflite classifier over a labelled image folder (<dataset>/<class>/<image>, "
            "where <class> is a label from the model card or an output index) and report top-1 "
            "accuracy, per-class accuracy, a confidence histogram and latency p50/p95. Labels "
            "and preprocessing come from --card, else the model card next to the model "
            "(<model>.json), else the model itself: its TFLite metadata (label file, "
            "normalisation, colour space), else its int8/uint8 input quantization, else defaults "
            "(RGB, [-1, 1]). The 'card' line of the report says which decided."
        ),
    )
    parser.add_argument("model", type=Path, help="the .tflite file")
    parser.add_argument("dataset", type=Path, help="labelled image folder")
    parser.add_argument("--card", type=Path, help="model card to use instead of <model>.json")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (default 2)")
    parser.add_argument("--limit", type=int, help="evaluate at most this many images")
    parser.add_argument("--output", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from edgecascade.shared.runtime.card import ModelCard

    card = ModelCard.load(args.card) if args.card else None
    runtime = ModelRuntime.load(args.model, num_threads=args.threads, card=card)
    report = evaluate(runtime, LabelledFolder(args.dataset, runtime.labels, args.limit))
    sys.stdout.write(format_table(report))
    if args.output:
        args.output.write_text(report.model_dump_json(indent=2) + "\n")
        sys.stdout.write(f"wrote {args.output}\n")
    return 0
