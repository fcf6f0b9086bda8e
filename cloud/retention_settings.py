"""The ``retention`` settings section of the cloud (:mod:`cloud.retention` enforces them)."""

from __future__ import annotations

from pydantic import Field

from edgecascade.shared.config import Section


class RetentionSection(Section):
    """How long the cloud keeps what; 0 keeps forever."""

    interval_s: float = Field(3600.0, gt=0, description="Seconds between purge passes.")
    results_days: float = Field(365.0, ge=0, description="Results (and their boxes), by capture.")
    frames_days: float = Field(
        30.0, ge=0, description="Escalation frames, by arrival (rows and verdicts stay)."
    )
    frames_max_gb: float = Field(
        0.0, ge=0, description="Escalation frames in total: the oldest purgeable go first; 0: none."
    )
    telemetry_days: float = Field(90.0, ge=0, description="Telemetry samples.")
    telemetry_full_days: float = Field(
        1.0, ge=0, description="Telemetry younger than this keeps every sample; older is thinned."
    )
    telemetry_bucket_s: float = Field(
        300.0, gt=0, description="Thinned telemetry: one sample per device per this many seconds."
    )
    alerts_days: float = Field(180.0, ge=0, description="Resolved alerts and their deliveries.")
