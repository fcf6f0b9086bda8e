"""Retention: what the cloud keeps, how long, and the periodic purge that enforces it.

Per kind a maximum age (``retention.*_days``; 0 keeps forever) and, for escalation frames, a
maximum total size; telemetry older than ``telemetry_full_days`` is thinned to one sample per
device per ``telemetry_bucket_s``. A pass runs every ``interval_s`` in the cloud process.

What is never purged, whatever its age or the size limit: the frame of an escalation that has no
verdict yet (a worker or the resubmitter still needs it), a frame a person labelled (the label
override is training data), and any frame while a training run is queued or running (its dataset
snapshot is being exported from the store). A purged frame's escalation row stays, with
``frame_purged_at`` set: the verdict and the figures remain, the frame API answers 404. Rows are
deleted in batches of ``BATCH`` so a pass never holds a long transaction. Dead letters are not
stored by the cloud (they expire in the gateway's outbox, by its class TTL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, exists, select, update

from edgecascade.cloud.blobs import BlobStore
from edgecascade.cloud.db.alert_models import Alert, AlertDelivery
from edgecascade.cloud.db.models import (
    DetectedBox,
    Escalation,
    LabelOverride,
    Result,
    Telemetry,
    TrainingRun,
    Verdict,
)
from edgecascade.cloud.retention_settings import RetentionSection

logger = logging.getLogger(__name__)

DAY = 86_400.0
BATCH = 1000
ACTIVE_RUNS = ("queued", "running")


@dataclass
class PurgeReport:
    purged: Counter[str] = field(default_factory=Counter)
    frame_bytes: int = 0  # the frames area of the blob store after the pass
    frames_protected: bool = False  # a training run was exporting: no frame was purged


class Purger:
    """One purge pass at a time (:meth:`purge`); :meth:`start` runs them periodically."""

    def __init__(self, engine: Engine, blobs: BlobStore, settings: RetentionSection) -> None:
        self.engine, self.blobs, self.settings = engine, blobs, settings
        self.totals: Counter[str] = Counter()
        self.frame_bytes: int | None = None  # the blob store's frames, as of the last pass
        self._thinned_until = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        wait = min(60.0, self.settings.interval_s)  # the first pass soon after start
        while not self._stopping.wait(wait):
            wait = self.settings.interval_s
            try:
                self.purge()
            except Exception:  # a failed pass is retried at the next one
                logger.exception("retention: a purge pass failed")

    def purge(self, now: float | None = None) -> PurgeReport:
        now = time.time() if now is None else now
        s, report = self.settings, PurgeReport()
        if s.results_days > 0:
            report.purged["results"] = self._results(now - s.results_days * DAY)
        self._frames(now, report)
        if s.telemetry_days > 0:
            report.purged["telemetry"] = self._telemetry(now - s.telemetry_days * DAY)
        report.purged["telemetry_thinned"] = self._thin_telemetry(now - s.telemetry_full_days * DAY)
        if s.alerts_days > 0:
            report.purged["alerts"] = self._alerts(now - s.alerts_days * DAY)
        self.totals.update(report.purged)
        if any(report.purged.values()):
            logger.info("retention: purged %s", dict(+report.purged))
        return report

    # -- results, telemetry, alerts --------------------------------------------------------------
    def _results(self, cutoff: float) -> int:
        """Results captured before ``cutoff`` and their boxes, a batch per transaction."""
        gone = 0
        while True:
            with self.engine.begin() as conn:
                ids = conn.scalars(
                    select(Result.msg_id).where(Result.captured_at < cutoff).limit(BATCH)
                ).all()
                if not ids:
                    return gone
                conn.execute(delete(DetectedBox).where(DetectedBox.result_id.in_(ids)))
                conn.execute(delete(Result).where(Result.msg_id.in_(ids)))
            gone += len(ids)

    def _telemetry(self, cutoff: float) -> int:
        """Telemetry samples older than ``cutoff``, a batch per transaction."""
        gone = 0
        while True:
            with self.engine.begin() as conn:
                ids = conn.scalars(
                    select(Telemetry.msg_id).where(Telemetry.ts < cutoff).limit(BATCH)
                ).all()
                if not ids:
                    return gone
                conn.execute(delete(Telemetry).where(Telemetry.msg_id.in_(ids)))
            gone += len(ids)

    def _thin_telemetry(self, cutoff: float) -> int:
        """Keep the first sample per device per bucket among those older than ``cutoff`` (and
        not thinned by an earlier pass)."""
        bucket = self.settings.telemetry_bucket_s
        start, end = self._thinned_until, cutoff - cutoff % bucket  # whole buckets only
        if end <= start:
            return 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Telemetry.msg_id, Telemetry.site_id, Telemetry.device_id, Telemetry.ts)
                .where(Telemetry.ts >= start, Telemetry.ts < end)
                .order_by(Telemetry.ts, Telemetry.msg_id)
            ).all()
        kept: set[tuple[str, str, int]] = set()
        doomed = []
        for msg_id, site, device, ts in rows:
            key = (site, device, int(ts // bucket))
            if key in kept:
                doomed.append(msg_id)
            else:
                kept.add(key)
        for i in range(0, len(doomed), BATCH):
            with self.engine.begin() as conn:
                conn.execute(delete(Telemetry).where(Telemetry.msg_id.in_(doomed[i : i + BATCH])))
        self._thinned_until = end
        return len(doomed)

    def _alerts(self, cutoff: float) -> int:
        with self.engine.begin() as conn:
            ids = conn.scalars(
                select(Alert.id).where(Alert.state == "resolved", Alert.resolved_at < cutoff)
            ).all()
            for i in range(0, len(ids), BATCH):
                chunk = ids[i : i + BATCH]
                conn.execute(delete(AlertDelivery).where(AlertDelivery.alert_id.in_(chunk)))
                conn.execute(delete(Alert).where(Alert.id.in_(chunk)))
        return len(ids)

    # -- frames ------------------------------------------------------------------------------------
    def _frames(self, now: float, report: PurgeReport) -> None:
        """Frames past their age, then the oldest purgeable ones while over the size limit."""
        sizes = dict(self.blobs.inventory())
        report.frame_bytes = sum(sizes.values())
        with self.engine.connect() as conn:
            exporting = conn.scalar(select(exists().where(TrainingRun.state.in_(ACTIVE_RUNS))))
        if exporting:
            report.frames_protected = True
            self.frame_bytes = report.frame_bytes
            return
        s = self.settings
        cutoff = now - s.frames_days * DAY if s.frames_days > 0 else 0.0
        limit = int(s.frames_max_gb * 1e9)
        purged, done = 0, False
        while not done and (batch := self._purgeable()):
            for esc_id, key, received_at in batch:
                over = limit > 0 and report.frame_bytes > limit
                if received_at >= cutoff and not over:
                    done = True  # oldest first: the rest is younger and fits
                    break
                # The file first: a crash before the row is marked leaves a row whose frame is
                # gone, which the next pass marks (deleting a missing file is no error).
                self.blobs.delete(key)
                with self.engine.begin() as conn:
                    conn.execute(
                        update(Escalation)
                        .where(Escalation.msg_id == esc_id)
                        .values(frame_purged_at=now)
                    )
                report.frame_bytes -= sizes.get(key, 0)
                purged += 1
        report.purged["frames"] = purged
        self.frame_bytes = report.frame_bytes

    def _purgeable(self) -> list[tuple[str, str, float]]:
        """The next :data:`BATCH` escalations whose frame may go, oldest first: judged, not
        labelled by a person, not purged yet."""
        judged = exists().where(Verdict.escalation_id == Escalation.msg_id)
        labelled = exists().where(LabelOverride.escalation_id == Escalation.msg_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Escalation.msg_id, Escalation.blob_path, Escalation.received_at)
                .where(Escalation.frame_purged_at.is_(None), judged, ~labelled)
                .order_by(Escalation.received_at, Escalation.msg_id)
                .limit(BATCH)
            ).all()
        return [(r[0], r[1], float(r[2])) for r in rows]
