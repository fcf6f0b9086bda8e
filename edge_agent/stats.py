"""The agent's counters, kept while it runs and written to ``stats.json`` when it stops."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AgentStats:
    frames: int = 0
    results: int = 0
    escalations: int = 0
    audits: int = 0  # random samples of sure frames, uploaded like escalations
    over_budget: int = 0
    cooled_down: int = 0
    gated: int = 0
    capture_drops: int = 0
    verdicts: int = 0
    corrected: int = 0
    skipped: int = 0
    dropped: int = 0
    rejected: int = 0
    outbox_depth: int = 0
    detections: int = 0  # boxes sent in results (after the zones)
    detections_excluded: int = 0  # in an exclude zone, or outside every include zone
    detections_invalid: int = 0  # not finite (NaN score or corner): dropped
