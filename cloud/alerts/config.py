"""What an alert rule is, and where notifications go: the ``[alerts]`` settings section.

The rules in the settings are the defaults; ``PUT /api/alerts/rules`` replaces them with a set
stored in the database (:mod:`cloud.alerts.rulestore`), validated by the same :class:`AlertRule`.
Every check names the rule and the value it refuses, so a bad edit is answered with what to fix.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgecascade.shared.config import Section
from edgecascade.shared.topics import ID_PATTERN


class AlertKind(StrEnum):
    """What a rule watches; the threshold's unit depends on it (:data:`THRESHOLD_RANGES`)."""

    OFFLINE = "offline"  # a device or gateway not heard from / offline for threshold seconds
    STREAM_LOST = "stream_lost"  # the agent's state says its camera source is reconnecting
    ESCALATION_RATE = "escalation_rate"  # share of results escalated over window_s
    DISAGREEMENT = "disagreement"  # share of escalations the cloud disagrees with, window_s
    ACCURACY = "accuracy"  # audit-sample accuracy estimate below threshold
    OUTBOX = "outbox"  # outbox bytes above threshold % of its quota (newest telemetry)
    TEMPERATURE = "temperature"  # newest temperature above threshold, degrees C
    ROLLED_BACK = "rolled_back"  # a rollout rolled back within window_s
    TRAINING_FAILED = "training_failed"  # a training run failed within window_s


# (low, high) a threshold must lie in, inclusive; None: the kind takes no threshold.
THRESHOLD_RANGES: dict[AlertKind, tuple[float, float] | None] = {
    AlertKind.OFFLINE: (1.0, 30 * 86400.0),
    AlertKind.STREAM_LOST: None,
    AlertKind.ESCALATION_RATE: (0.0, 1.0),
    AlertKind.DISAGREEMENT: (0.0, 1.0),
    AlertKind.ACCURACY: (0.0, 1.0),
    AlertKind.OUTBOX: (0.0, 100.0),
    AlertKind.TEMPERATURE: (-50.0, 200.0),
    AlertKind.ROLLED_BACK: None,
    AlertKind.TRAINING_FAILED: None,
}
# Kinds measured per site (and model, rollout or run), never per device.
SITE_ONLY = frozenset(
    {AlertKind.DISAGREEMENT, AlertKind.ACCURACY, AlertKind.ROLLED_BACK, AlertKind.TRAINING_FAILED}
)
THRESHOLD_UNITS: dict[AlertKind, str] = {
    AlertKind.OFFLINE: "seconds",
    AlertKind.ESCALATION_RATE: "a share of results, 0-1",
    AlertKind.DISAGREEMENT: "a share of escalations, 0-1",
    AlertKind.ACCURACY: "an accuracy, 0-1",
    AlertKind.OUTBOX: "percent of the outbox quota",
    AlertKind.TEMPERATURE: "degrees Celsius",
}


class AlertRule(BaseModel):
    """One rule: a kind, its threshold and window, and optionally a site or device scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ID_PATTERN, description="Unique name; alerts carry it.")
    kind: AlertKind = Field(description="What the rule watches.")
    threshold: float | None = Field(
        None,
        description="offline: seconds; escalation_rate, disagreement: fires above this share; "
        "accuracy: fires below it; outbox: percent of quota; temperature: degrees C; none for "
        "stream_lost, rolled_back, training_failed.",
    )
    window_s: float = Field(
        3600.0,
        gt=0,
        le=90 * 86400,
        description="Window the rates and the accuracy are measured over; how old the newest "
        "telemetry of temperature and outbox may be; how far back rolled_back and "
        "training_failed look.",
    )
    for_s: float = Field(
        0.0, ge=0, le=86400, description="The condition must hold this long before it fires."
    )
    min_samples: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="Results, verdicts or audit samples needed in the window to judge a rate.",
    )
    site: str | None = Field(None, pattern=ID_PATTERN, description="Only this site.")
    device: str | None = Field(None, pattern=ID_PATTERN, description="Only this device.")

    @model_validator(mode="after")
    def _threshold_fits(self) -> AlertRule:
        if self.device is not None and self.kind in SITE_ONLY:
            raise ValueError(
                f"rule {self.name!r}: kind {self.kind.value} is measured per site; device "
                f"{self.device!r} cannot scope it"
            )
        allowed = THRESHOLD_RANGES[self.kind]
        if allowed is None:
            if self.threshold is not None:
                raise ValueError(
                    f"rule {self.name!r}: kind {self.kind.value} takes no threshold, got "
                    f"{self.threshold}"
                )
            return self
        low, high = allowed
        unit = THRESHOLD_UNITS[self.kind]
        if self.threshold is None:
            raise ValueError(
                f"rule {self.name!r}: kind {self.kind.value} needs a threshold ({unit})"
            )
        if not low <= self.threshold <= high:
            raise ValueError(
                f"rule {self.name!r}: threshold {self.threshold} is out of range for "
                f"{self.kind.value} ({unit}, {low:g} to {high:g})"
            )
        return self


class RuleSet(BaseModel):
    """The rules in force; names are unique (an alert names its rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[AlertRule] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


class AlertsSection(Section):
    """Alert rules (the defaults; the API may replace them) and where notifications go."""

    rules: list[AlertRule] = Field(
        default_factory=list,
        description="Default rules, used until PUT /api/alerts/rules stores a set.",
    )
    interval_s: float = Field(15.0, gt=0, le=3600, description="Seconds between evaluations.")
    apprise: list[str] = Field(
        default_factory=list,
        description="Apprise notification URLs (mailto://user:pass@host, ntfy://, slack://...): "
        "each gets every firing and resolved alert.",
    )
    webhooks: list[str] = Field(
        default_factory=list,
        description="http(s) URLs each POSTed every firing and resolved alert as JSON.",
    )
    mqtt_topic: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
        description="Publish every alert event as JSON on <mqtt_topic>/<site>/<rule>/<alert id> "
        "(QoS 1; firing retained, resolved not, then an empty retained message clears it), e.g. "
        "ec/cloud/alerts (outside the devices' <prefix>/v1/ tree). None: no MQTT channel.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="Longest wait for one delivery attempt."
    )
    retry_first_s: float = Field(
        5.0, gt=0, description="Wait before the first retry of a failed delivery; doubles."
    )
    retry_max_s: float = Field(600.0, gt=0, description="Longest wait between retries.")
    max_attempts: int = Field(
        20,
        ge=1,
        le=1000,
        description="Attempts before a delivery is given up on (kept, marked failed).",
    )

    @model_validator(mode="after")
    def _checked(self) -> AlertsSection:
        RuleSet(rules=self.rules)
        for url in self.webhooks:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"alerts.webhooks: {url!r} is not an http(s) URL")
        return self
