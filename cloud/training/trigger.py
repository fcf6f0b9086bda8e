"""When a site's edge model should be fine-tuned: a pure decision, and the thread that asks it.

:func:`should_train` looks at a site's figures (:class:`SiteStats`) and the ``[train]`` settings
and names the first trigger that fires, or None. Every trigger is off by default; a run can
always be queued by hand (``POST /api/training/runs``). A site with a queued or running run is
left alone, so a trigger that keeps firing queues one run at a time.

:class:`TrainingScheduler` is a thread of the cloud process: every ``train.check_interval_s`` it
gathers each site's figures and *inserts* a queued run where a trigger fires. It never trains:
``edgecascade cloud trainer`` (another process, with the train extra) claims the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from edgecascade.cloud.db.models import Site
from edgecascade.cloud.settings import TrainSection
from edgecascade.cloud.training import store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SiteStats:
    """What the triggers look at for one site."""

    new_verdicts: int  # since the site's last run was queued (all of them when it never ran)
    window_verdicts: int  # on escalated frames, over train.window_s
    window_disagreements: int  # of those, the cloud disagreeing with the edge
    last_run_at: float | None  # when the site's last run was queued
    active: bool  # a run of the site is queued or running


def should_train(stats: SiteStats, settings: TrainSection, now: float) -> str | None:
    """The reason to queue a run for the site now, or None."""
    if stats.active:
        return None
    if settings.min_new_samples > 0 and stats.new_verdicts >= settings.min_new_samples:
        return (
            f"min_new_samples: {stats.new_verdicts} new verdicts since the last run "
            f"(at least {settings.min_new_samples})"
        )
    if (
        settings.max_disagreement > 0
        and stats.window_verdicts >= settings.min_window_verdicts
        and stats.window_disagreements > settings.max_disagreement * stats.window_verdicts
    ):
        share = stats.window_disagreements / stats.window_verdicts
        return (
            f"max_disagreement: the cloud disagreed with {share:.1%} of "
            f"{stats.window_verdicts} escalations over {settings.window_s:g}s (escalated only; "
            f"more than {settings.max_disagreement:.1%})"
        )
    if settings.schedule_s > 0:
        if stats.last_run_at is None:
            return f"schedule_s: no run yet (every {settings.schedule_s:g}s)"
        if now - stats.last_run_at >= settings.schedule_s:
            return (
                f"schedule_s: last run {now - stats.last_run_at:.0f}s ago "
                f"(every {settings.schedule_s:g}s)"
            )
    return None


def site_stats(session: Session, site: str, settings: TrainSection, now: float) -> SiteStats:
    last = store.last_run_at(session, site)
    window = store.verdict_counts(session, site, now - settings.window_s)
    return SiteStats(
        new_verdicts=store.verdict_counts(session, site, last).total,
        window_verdicts=window.escalated,
        window_disagreements=window.disagreeing,
        last_run_at=last,
        active=store.has_active_run(session, site),
    )


def triggers_on(settings: TrainSection) -> bool:
    return settings.min_new_samples > 0 or settings.max_disagreement > 0 or settings.schedule_s > 0


class TrainingScheduler(threading.Thread):
    """Queues runs where a trigger fires, every ``check_interval_s``, until stopped."""

    def __init__(self, engine: Engine, settings: TrainSection) -> None:
        super().__init__(name="training-trigger", daemon=True)
        self.engine = engine
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10)

    def run(self) -> None:
        while not self._stopping.wait(self.settings.check_interval_s):
            try:
                self.check(time.time())
            except Exception:  # one bad pass must not end the thread
                self.counts["errors"] += 1
                logger.exception("training trigger: a pass failed")

    def check(self, now: float) -> list[str]:
        """Queue a run for each site whose trigger fires; the new runs' ids."""
        queued = []
        with Session(self.engine) as session:
            for site in session.scalars(select(Site.id).order_by(Site.id)).all():
                reason = should_train(
                    site_stats(session, site, self.settings, now), self.settings, now
                )
                if reason is not None:
                    run = store.queue_run(session, site, reason, now)
                    logger.info("training run %s queued for %s: %s", run.id, site, reason)
                    self.counts["queued"] += 1
                    queued.append(run.id)
        return queued
