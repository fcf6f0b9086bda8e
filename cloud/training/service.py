"""The trainer: a process that claims queued training runs, one at a time, and does them.

Start-up fails the runs whose trainer stopped mid-run (heartbeat older than
``train.stale_after_s``: a SIGKILL, a power cut), so the next run starts clean; then, until the
stop event is set, it claims the oldest queued run (a conditional update, so two trainers never
take the same run), does it (:func:`cloud.training.runner.execute`) while a thread moves the
run's heartbeat and saves its log, and writes how it ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import BlobStore
from edgecascade.cloud.db.models import TrainingRun
from edgecascade.cloud.errors import CloudError
from edgecascade.cloud.rollouts import RolloutController
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.training import store
from edgecascade.cloud.training.runner import (
    TRAIN_COMMAND,
    DatasetExporter,
    RunLog,
    execute,
    fail,
)
from edgecascade.cloud.training.store import Outcome, RunState

logger = logging.getLogger(__name__)


@dataclass
class Trainer:
    """Claims and does training runs; ``rollouts`` must be connected (``begin(loop=False)``)."""

    engine: Engine
    settings: CloudSettings
    blobs: BlobStore
    exporter: DatasetExporter
    rollouts: RolloutController
    trainer_id: str = "trainer"
    command: Sequence[str] = TRAIN_COMMAND
    counts: Counter[str] = field(default_factory=Counter)

    def fail_stale(self) -> list[str]:
        failed = store.fail_stale(self.engine, self.settings.train.stale_after_s, time.time())
        for run_id in failed:
            logger.warning("training run %s failed: its trainer stopped mid-run", run_id)
        return failed

    def serve(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: fail stale runs, do queued ones, wait ``poll_s`` when idle."""
        while not stop.is_set():
            self.fail_stale()
            if self.run_next() is None:
                stop.wait(self.settings.train.poll_s)

    def run_next(self) -> str | None:
        """Claim the oldest queued run and do it; its id, or None when none was queued."""
        run_id = store.claim_oldest(self.engine, self.trainer_id, time.time())
        if run_id is None:
            return None
        with Session(self.engine, expire_on_commit=False) as session:
            run = session.get_one(TrainingRun, run_id)
        log = RunLog()
        log.note(
            "run %s of site %s claimed by %s (%s)",
            run.id,
            run.site_id,
            self.trainer_id,
            run.trigger,
        )
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(run.id, log, beating), daemon=True)
        beat.start()
        try:
            outcome = self._outcome(run, log)
        finally:
            beating.set()
            beat.join()
        self._finish(run.id, outcome, log)
        return run.id

    def _outcome(self, run: TrainingRun, log: RunLog) -> Outcome:
        try:
            return execute(self, run, log)
        except CloudError as exc:
            log.note("failed: %s", exc)
            return fail(exc)
        except Exception as exc:  # a bug must fail the run, not leave it running
            logger.exception("training run %s", run.id)
            return Outcome(RunState.FAILED, f"{type(exc).__name__}: {exc}")

    def _beat(self, run_id: str, log: RunLog, done: threading.Event) -> None:
        while not done.wait(self.settings.train.heartbeat_s):
            try:
                if not store.heartbeat(
                    self.engine, run_id, self.trainer_id, time.time(), log.text()
                ):
                    logger.warning("training run %s is no longer this trainer's", run_id)
            except Exception:  # a database hiccup: the next beat tries again
                logger.exception("training run %s: heartbeat failed", run_id)

    def _finish(self, run_id: str, outcome: Outcome, log: RunLog) -> None:
        with Session(self.engine) as session:
            mine = store.finish(session, run_id, self.trainer_id, outcome, log.text(), time.time())
        self.counts[outcome.state.value] += 1
        if mine:
            logger.info("training run %s %s: %s", run_id, outcome.state.value, outcome.reason)
        else:
            logger.warning(
                "training run %s ended %s after it was failed as stale", run_id, outcome.state.value
            )
