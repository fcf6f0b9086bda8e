"""``edgecascade cloud train``: fine-tune an edge model on a verdict dataset, in its own process.

It needs the train extra (torch, litert-torch, ai-edge-quantizer), which the cloud service does
not: the cloud starts this command and reads what it leaves in ``--out``. That folder appears
whole or not at all: everything is written into a hidden staging folder beside it and renamed
at the end, so a run killed at any point (SIGKILL, a full disk) leaves no half-written model; the
next run removes the stale staging folder and starts clean.

``--out`` then holds the child ``.tflite`` (int8) under the parent's file name, its card (version
bumped by :func:`child_version`, ``trainable`` pointing at the child's own state_dict, and the
``lineage``), the state_dict and ``report.json`` (figures before and after, the gates' decision).
Whether the child ships is the cloud's call; the report carries the decision of
:func:`cloud.training_gates.decide_ship` on the flags given here.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgecascade.cloud.training_gates import TrainReport, decide_ship
from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import Lineage, ModelCard, ModelMetrics, TrainableSource

if TYPE_CHECKING:
    from edgecascade.cloud.dataset import DatasetManifest
    from edgecascade.modelzoo.finetune import Child

logger = logging.getLogger(__name__)

REPORT = "report.json"


def add_train_parser(actions: SubParsers[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "train",
        help="fine-tune an edge model on a verdict dataset (needs the train extra)",
        description=(
            "Fine-tune the parent model from its trainable source on a verdict dataset "
            "(edgecascade cloud dataset export): distillation on the cloud's soft targets plus "
            "replay of the original training data, int8 calibrated on the dataset's frames, "
            "measured before and after on the dataset's held-out slice and on the original "
            "evaluation set. Writes the child .tflite, its card with lineage, its weights and "
            "report.json into --out (all or nothing). Needs: pip install 'edgecascade[train]' "
            "torch==2.13.0"
        ),
    )
    parser.add_argument("--dataset", type=Path, required=True, metavar="DIR", help="the dataset")
    parser.add_argument(
        "--parent", type=Path, required=True, metavar="PATH", help="the parent .tflite (with card)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="new (or empty) output folder"
    )
    parser.add_argument("--epochs", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam (default: %(default)s)")
    parser.add_argument(
        "--alpha", type=float, default=0.7, help="distillation weight (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=float, default=2.0, help="distillation T (default: %(default)s)"
    )
    parser.add_argument(
        "--replay-fraction",
        type=float,
        default=0.75,
        help="share of each batch from the original training data (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument(
        "--replay-dir", type=Path, help="the original training data (default: the architecture's)"
    )
    parser.add_argument(
        "--max-regression-points",
        type=float,
        default=0.5,
        help="gate: most the original accuracy may drop (default: %(default)s)",
    )
    parser.add_argument(
        "--min-holdout", type=int, default=50, help="gate: held-out samples needed (default: 50)"
    )
    parser.add_argument(
        "--min-improvement-points",
        type=float,
        default=0.0,
        help="gate: the child must beat the parent on the holdout by more (default: 0)",
    )
    parser.set_defaults(func=run_train)


def child_version(parent_version: str, snapshot_id: str) -> str:
    """``1.0.0`` -> ``1.1.0-ft.<first 8 of snapshot>``; a fine-tune of that -> ``1.2.0-ft.<...>``.

    The minor is bumped and the suffix names the data, so versions sort by generation and two
    children of one parent on different snapshots differ.
    """
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", parent_version)
    suffix = f"ft.{snapshot_id[:8]}"
    if match is None:
        return f"{parent_version}-{suffix}"
    major, minor = int(match[1]), int(match[2])
    return f"{major}.{minor + 1}.0-{suffix}"


def staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def prepare_out(out: Path) -> Path:
    """Refuse a non-empty --out; remove stale staging folders; make a fresh one beside it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out}: exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(staging_prefix(out) + "*"):
        logger.warning("removing %s, left by a run that did not finish", stale)
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=out.parent))


def run_train(args: argparse.Namespace) -> int:
    from edgecascade.cloud.dataset import read_dataset
    from edgecascade.modelzoo.finetune import FinetuneOptions, finetune, load_parent

    parent = load_parent(args.parent)  # refuses a parent without a trainable source first
    manifest, _ = read_dataset(args.dataset)
    options = FinetuneOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        alpha=args.alpha,
        temperature=args.temperature,
        replay_fraction=args.replay_fraction,
        seed=args.seed,
        replay_dir=args.replay_dir,
    )
    staging = prepare_out(args.out)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the converters' progress lines
            child = finetune(args.parent, args.dataset, options)
        try:
            report = write_child(staging, parent.path, parent.card, manifest, child, args)
        except OSError as exc:  # a full disk, a read-only folder: nothing of the child is kept
            raise ModelError(f"{args.out}: cannot write the child model: {exc}") from exc
        if args.out.exists():
            args.out.rmdir()
        staging.rename(args.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    sys.stdout.write(format_table(report))
    sys.stdout.write(f"wrote {', '.join(report.files)} to {args.out}\n")
    return 0


def write_child(
    folder: Path,
    parent_path: Path,
    parent: ModelCard,
    manifest: DatasetManifest,
    child: Child,
    args: argparse.Namespace,
) -> TrainReport:
    """The child's model, weights, card and report.json, into ``folder``."""
    assert parent.trainable is not None  # load_parent refused it otherwise
    result = child.result
    model_path = folder / parent_path.name
    weights_path = folder / parent.trainable.weights
    model_path.write_bytes(child.int8_model)
    weights_path.write_bytes(child.weights)
    lineage = Lineage(
        parent=f"{parent.name}@{parent.version}",
        parent_sha256=hashlib.sha256(parent_path.read_bytes()).hexdigest(),
        dataset_snapshot_id=manifest.snapshot_id,
        dataset_size=manifest.count,
        train_samples=result.train_samples,
        holdout_samples=result.holdout_samples,
        original_eval_dataset=result.original_eval_dataset,
        before=result.before,
        after=result.after,
        command=command_line(args),
    )
    card = child_card(parent, child, weights_path.name, lineage)
    card.save(model_path.with_suffix(".json"))
    decision = decide_ship(
        result.before,
        result.after,
        args.max_regression_points,
        args.min_holdout,
        holdout_samples=result.holdout_samples,
        min_improvement_points=args.min_improvement_points,
    )
    report = TrainReport(
        model=f"{card.name}@{card.version}",
        parent=lineage.parent,
        dataset_snapshot_id=manifest.snapshot_id,
        result=result,
        decision=decision,
        files=[model_path.name, model_path.with_suffix(".json").name, weights_path.name, REPORT],
    )
    (folder / REPORT).write_text(report.model_dump_json(indent=2) + "\n")
    return report


def child_card(parent: ModelCard, child: Child, weights: str, lineage: Lineage) -> ModelCard:
    """The parent's card with the child's version, file, figures, weights and lineage."""
    assert parent.trainable is not None
    result = child.result
    return parent.model_copy(
        update={
            "version": child_version(parent.version, lineage.dataset_snapshot_id),
            "build_command": lineage.command,
            "sha256": hashlib.sha256(child.int8_model).hexdigest(),
            "size_bytes": len(child.int8_model),
            "metrics": ModelMetrics(
                accuracy=result.after.original_accuracy,
                eval_dataset=result.original_eval_dataset,
                epochs=result.epochs,
                holdout_accuracy=result.after.holdout_accuracy,
            ),
            "trainable": TrainableSource(
                architecture=parent.trainable.architecture,
                weights=weights,
                weights_sha256=hashlib.sha256(child.weights).hexdigest(),
            ),
            "lineage": lineage,
        }
    )


TRAIN_FLAGS = (
    "dataset",
    "parent",
    "out",
    "epochs",
    "batch_size",
    "lr",
    "alpha",
    "temperature",
    "replay_fraction",
    "seed",
    "replay_dir",
    "max_regression_points",
    "min_holdout",
    "min_improvement_points",
)


def command_line(args: argparse.Namespace) -> str:
    """The run as a command with every option spelled out (defaults included): repeatable."""
    words = ["edgecascade", "cloud", "train"]
    for name in TRAIN_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)


def format_table(report: TrainReport) -> str:
    r = report.result

    def row(name: str, before: float | None, after: float | None) -> str:
        if before is None or after is None:
            return f"{name:<34} {'-':>10} {'-':>10} {'-':>8}\n"
        return f"{name:<34} {before:>10.4f} {after:>10.4f} {100 * (after - before):>+8.2f}\n"

    return (
        f"{'top-1':<34} {'parent':>10} {'child':>10} {'points':>8}\n"
        + row(
            f"holdout ({r.holdout_samples} samples)",
            r.before.holdout_accuracy,
            r.after.holdout_accuracy,
        )
        + row(
            f"original ({r.original_eval_dataset})",
            r.before.original_accuracy,
            r.after.original_accuracy,
        )
        + f"{report.parent} -> {report.model}: {r.train_samples} train samples, "
        f"{r.epochs} epochs, {r.seconds:.0f}s\n"
        + f"{'ship' if report.decision.ship else 'do not ship'}: {report.decision.reason}\n"
    )
