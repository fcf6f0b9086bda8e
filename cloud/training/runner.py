"""One training run, start to end: parent, dataset, fine-tune, gates, registry, rollout.

The fine-tune is ``edgecascade cloud train`` in a subprocess rather than a call into
``modelzoo``: the cloud package stays free of torch, the command's all-or-nothing output folder
and ``report.json`` are the one contract, its output lines are the run's log as they come, and a
crash or an out-of-memory in training fails one run instead of the trainer. The subprocess dies
with the trainer (``PR_SET_PDEATHSIG`` on Linux), so a SIGKILLed trainer leaves no orphan.

The gates are applied here, with the cloud's ``[train]`` settings, on the figures the command
reports. Registering the child is the last database step of a shipped model and one transaction;
the rollout starts only after it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import BlobNotFound, BlobStore
from edgecascade.cloud.dataset import DatasetFilters, DatasetManifest
from edgecascade.cloud.db.models import Device, ModelVersion, TrainingRun
from edgecascade.cloud.errors import CloudError, RolloutError, TrainingFailed
from edgecascade.cloud.registry import ModelStore, Upload, card_of, register
from edgecascade.cloud.rollouts import RolloutController, RolloutRequest
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.training import store
from edgecascade.cloud.training.store import Outcome, Progress, RunState
from edgecascade.cloud.training_gates import TrainReport, decide_ship
from edgecascade.shared.runtime.card import ModelCard

logger = logging.getLogger(__name__)

TRAIN_COMMAND = (sys.executable, "-m", "edgecascade", "cloud", "train")
LOG_LIMIT = 200_000  # characters of a run's log kept (the newest)


class DatasetExporter(Protocol):
    """Writes the verdict dataset selected by ``filters`` into ``out`` (a new folder)."""

    def __call__(
        self, session: Session, blobs: BlobStore, filters: DatasetFilters, out: Path
    ) -> DatasetManifest: ...


class RunLog:
    """A run's log lines, appended from several threads, read whole for the row."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line.rstrip("\n"))

    def note(self, message: str, *args: object) -> None:
        logger.info(message, *args)
        self.add(time.strftime("%H:%M:%S ") + (message % args if args else message))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines)[-LOG_LIMIT:]


def current_model(session: Session, site: str) -> ModelVersion:
    """The registered model most cameras of ``site`` run: the parent of its next child."""
    shas = session.scalars(select(Device.model_sha256).where(Device.site_id == site)).all()
    running = Counter(sha for sha in shas if sha)
    for sha256, _ in running.most_common():
        row = session.scalar(select(ModelVersion).where(ModelVersion.sha256 == sha256))
        if row is not None:
            return row
    raise TrainingFailed(f"no device of site {site} reports a model that is in the registry")


def write_parent(settings: CloudSettings, row: ModelVersion, folder: Path) -> Path:
    """The parent as ``edgecascade cloud train`` reads it: .tflite, card and weights."""
    card = card_of(row)
    if card.trainable is None:
        raise TrainingFailed(
            f"{row.name}@{row.version} has no trainable source (architecture and weights); "
            "it cannot be fine-tuned"
        )
    models = ModelStore(settings)
    try:
        weights = models.weights(row.sha256)
    except BlobNotFound:
        raise TrainingFailed(
            f"{row.name}@{row.version}: its weights are not in the registry"
        ) from None
    folder.mkdir(parents=True)
    path = folder / f"{row.name}.tflite"
    path.write_bytes(models.get(row.sha256))
    card.save(path.with_suffix(".json"))
    (folder / card.trainable.weights).write_bytes(weights)
    return path


def train_arguments(settings: CloudSettings, dataset: Path, parent: Path, out: Path) -> list[str]:
    train = settings.train
    flags = {
        "--dataset": dataset,
        "--parent": parent,
        "--out": out,
        "--epochs": train.epochs,
        "--replay-fraction": train.replay_fraction,
        "--max-regression-points": train.max_regression_points,
        "--min-holdout": train.min_holdout,
        "--min-improvement-points": train.min_improvement_points,
    }
    return [word for flag, value in flags.items() for word in (flag, str(value))]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    pr_set_pdeathsig, sigkill = 1, 9
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, sigkill)


def run_command(argv: Sequence[str], log: RunLog) -> None:
    """Run the fine-tune, its output lines into ``log``; a non-zero exit is a failed run."""
    log.note("running %s", " ".join(argv))
    with subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.add(line)
        code = process.wait()
    if code != 0:
        raise TrainingFailed(f"the fine-tune exited with status {code} (see the log)")


def read_child(out: Path) -> tuple[TrainReport, Upload]:
    """The fine-tune's report and its child as a registry upload."""
    try:
        report = TrainReport.model_validate_json((out / "report.json").read_text())
        model = next(out / name for name in report.files if name.endswith(".tflite"))
        card = ModelCard.model_validate_json(model.with_suffix(".json").read_text())
        assert card.trainable is not None
        weights = (out / card.trainable.weights).read_bytes()
    except (OSError, ValueError, StopIteration, AssertionError) as exc:
        raise TrainingFailed(f"the fine-tune's output in {out.name} is not usable: {exc}") from exc
    upload = Upload(
        content=model.read_bytes(),
        name=card.name,
        version=card.version,
        labels=card.labels,
        preprocess=card.preprocess.model_dump(mode="json"),
        trainable=card.trainable,
        weights=weights,
        lineage=card.lineage,
    )
    return report, upload


class RunContext(Protocol):
    """What a run needs from the trainer that executes it."""

    engine: Engine
    settings: CloudSettings
    blobs: BlobStore
    exporter: DatasetExporter
    command: Sequence[str]
    rollouts: RolloutController
    trainer_id: str


def execute(ctx: RunContext, run: TrainingRun, log: RunLog) -> Outcome:
    """Do the run; how it ended (exceptions other than :class:`CloudError` propagate)."""
    with tempfile.TemporaryDirectory(prefix=f"edgecascade-{run.id}-") as tmp:
        work = Path(tmp)
        with Session(ctx.engine) as session:
            parent_row = current_model(session, run.site_id)
            log.note("parent: %s@%s", parent_row.name, parent_row.version)
            store.record_progress(
                ctx.engine,
                run.id,
                ctx.trainer_id,
                Progress(parent_name=parent_row.name, parent_version=parent_row.version),
            )
            parent = write_parent(ctx.settings, parent_row, work / "parent")
            manifest = ctx.exporter(
                session, ctx.blobs, DatasetFilters(site=run.site_id), work / "dataset"
            )
        log.note("dataset %s: %d samples", manifest.snapshot_id, manifest.count)
        progress = Progress(snapshot_id=manifest.snapshot_id, dataset_size=manifest.count)
        store.record_progress(ctx.engine, run.id, ctx.trainer_id, progress)
        argv = [
            *ctx.command,
            *train_arguments(ctx.settings, work / "dataset", parent, work / "out"),
        ]
        run_command(argv, log)
        report, upload = read_child(work / "out")
        metrics = Progress(metrics=report.result.model_dump(mode="json"))
        store.record_progress(ctx.engine, run.id, ctx.trainer_id, metrics)
        return decide_and_ship(ctx, run, report, upload, log)


def decide_and_ship(
    ctx: RunContext, run: TrainingRun, report: TrainReport, upload: Upload, log: RunLog
) -> Outcome:
    """Apply the gates; register and roll out a child that passes them."""
    result, train = report.result, ctx.settings.train
    decision = decide_ship(
        result.before,
        result.after,
        train.max_regression_points,
        train.min_holdout,
        holdout_samples=result.holdout_samples,
        min_improvement_points=train.min_improvement_points,
    )
    log.note("gates: %s", decision.reason)
    if not decision.ship:
        return Outcome(RunState.REJECTED, decision.reason)
    with Session(ctx.engine) as session:
        child = register(session, ctx.settings, upload, created_by="trainer")
        name, version = child.name, child.version
    log.note("registered %s@%s", name, version)
    request = RolloutRequest(
        model_name=name, model_version=version, site=run.site_id, stages=train.stages
    )
    try:
        rollout = ctx.rollouts.create(request, created_by="trainer")
    except RolloutError as exc:
        log.note("rollout not started: %s", exc)
        return Outcome(
            RunState.SUCCEEDED,
            f"{decision.reason}; registered {name}@{version}; rollout not started: {exc}",
            child_version=version,
        )
    log.note("rollout %s started", rollout.id)
    return Outcome(RunState.SHIPPED, decision.reason, child_version=version, rollout_id=rollout.id)


def fail(exc: CloudError) -> Outcome:
    return Outcome(RunState.FAILED, str(exc))
