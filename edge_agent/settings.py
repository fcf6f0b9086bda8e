"""Settings of the device agent (TOML file, ``EC_AGENT_*`` environment, CLI flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from edgecascade.shared.config import ComponentSettings, MqttSettings, Section
from edgecascade.shared.fields import Tag
from edgecascade.shared.outbox import (
    DEFAULT_CONFIRM_S,
    DEFAULT_REPLAY_S,
    DEFAULT_SYNC,
    ConfirmSeconds,
    OutboxSync,
    ReplaySeconds,
)
from edgecascade.shared.runtime.runtime import Accelerator
from edgecascade.shared.topics import ID_PATTERN


class SourceSettings(Section):
    """Where frames come from."""

    kind: Literal["folder", "video", "camera", "stream", "picamera2"] = Field(
        "folder",
        description="folder: image replay; video: a file; camera: USB/V4L2 index; "
        "stream: RTSP/HTTP URL; picamera2: the Raspberry Pi camera.",
    )
    path: Path = Field(
        Path("data/fashion-mnist-eval"), description="folder or video: the folder or file."
    )
    index: int = Field(0, ge=0, description="camera: the V4L2 device index (/dev/videoN).")
    url: str | None = Field(None, description="stream: rtsp://, http:// or https:// URL.")
    fps: float = Field(
        5.0, gt=0, le=100_000, description="Frames per second to process at (live: at most)."
    )
    loop: bool = Field(False, description="folder or video: start again after the last frame.")
    shuffle_seed: int | None = Field(
        None,
        description="folder: replay in this seed's random order rather than sorted (the classes "
        "of a labelled test set then interleave, as in a real scene).",
    )
    max_frames: int | None = Field(None, gt=0, description="Stop after this many frames.")
    queue_size: int = Field(
        1, ge=1, le=64, description="Live sources: frames waiting for the model; newest wins."
    )
    backoff_max_s: float = Field(
        30.0, gt=0, description="Longest wait between attempts to reopen a lost source."
    )

    @model_validator(mode="after")
    def _target_matches_kind(self) -> SourceSettings:
        if self.kind == "stream" and not (
            self.url and self.url.split("://", 1)[0] in ("rtsp", "rtsps", "http", "https")
        ):
            raise ValueError(f"source.kind 'stream' needs source.url (rtsp/http), got {self.url!r}")
        if self.kind != "stream" and self.url is not None:
            raise ValueError(f"source.url is only used with kind 'stream', not {self.kind!r}")
        return self


class GatingSettings(Section):
    """Skip inference on frames that barely differ from the last processed one."""

    enabled: bool = Field(False, description="Turn scene-change gating on.")
    threshold: float = Field(
        2.0, ge=0, le=255, description="Difference (0-255, by measure) below which to skip."
    )
    measure: Literal["mean", "max_cell"] = Field(
        "mean",
        description="How a frame's 32x32 gray thumbnail is compared with the last processed "
        "one: mean = mean absolute difference over the cells (the whole scene's change; a far "
        "person barely moves it); max_cell = the largest absolute difference of one cell (a "
        "small local change passes, e.g. a far person; so does noise in one cell: use a "
        "higher threshold, e.g. 8-16).",
    )


class DetectionEscalationSettings(Section):
    """When a detection model's frame is unsure (docs/COMPONENTS.md: Escalation policy)."""

    rules: list[Literal["score_band", "count", "empty", "fewer_than_cloud"]] = Field(
        ["score_band", "count", "empty"],
        description="Rules that make a frame unsure. score_band: a detection's score in "
        "[score_low, score_high); count: a label's count (or the total) differs from the most "
        "frequent count of the previous count_window frames; empty: nothing found on a frame the "
        "scene gate passed as changed (needs gating.enabled); fewer_than_cloud: fewer boxes than "
        "the cloud counted on the last judged frame, on a frame the scene gate passed as changed "
        "(needs gating.enabled).",
    )
    score_low: float = Field(
        0.5, ge=0, le=1, description="score_band: lower bound (included) of the unsure scores."
    )
    score_high: float = Field(
        0.7, ge=0, le=1, description="score_band: upper bound (excluded) of the unsure scores."
    )
    count_window: int = Field(
        5, ge=1, le=1000, description="count: how many previous frames the count is held against."
    )
    count_by: Literal["label", "total"] = Field(
        "label", description="count: compare each label's count, or the total of all labels."
    )

    @model_validator(mode="after")
    def _band(self) -> DetectionEscalationSettings:
        if self.score_low > self.score_high:
            raise ValueError(
                f"escalation.detection.score_low {self.score_low} is above score_high "
                f"{self.score_high}: the band is [score_low, score_high)"
            )
        return self


class EscalationSettings(Section):
    """When a frame goes to the cloud, and what is sent (docs/COMPONENTS.md: Escalation policy)."""

    mode: Literal["max_prob", "margin", "entropy", "any", "always"] = Field(
        "max_prob",
        description="Which rule makes a classifier's frame unsure; any = any of the three; "
        "always = every frame, for a detector too (cloud-only: the reference the cascade is "
        "measured against). A detector's rules are escalation.detection.rules.",
    )
    threshold: float = Field(
        0.6, ge=0, le=1, description="max_prob: escalate when the top-1 probability is below this."
    )
    class_thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        {}, description="max_prob: per predicted label, overrides threshold."
    )
    margin: float = Field(
        0.2, ge=0, le=1, description="margin: escalate when top-1 minus top-2 is below this."
    )
    entropy: float = Field(
        0.5, ge=0, le=1, description="entropy: escalate when normalised entropy is above this."
    )
    cooldown_s: float = Field(
        10.0, ge=0, description="Skip near-duplicates of frames escalated this recently; 0 = off."
    )
    cooldown_distance: int = Field(
        4, ge=0, le=64, description="Near-duplicate: dHash differs in at most this many bits."
    )
    budget_per_minute: float = Field(
        60.0, ge=0, description="Token-bucket rate: at most this many escalations per minute."
    )
    burst: int = Field(10, ge=0, description="Token-bucket size: escalations allowed at once.")
    audit_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Of the frames the model is sure of, upload this random fraction as audit "
        "samples: the cloud's unbiased evidence of the edge model's accuracy. They spend the "
        "same token bucket (none once it is empty) and go last in the outbox; 0 = off.",
    )
    audit_seed: int | None = Field(
        None, description="Seed of the audit sample's random draw; none = a new one each start."
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of escalated frames.")
    max_side: int | None = Field(
        None, ge=16, description="Downscale escalated frames so the longer side is at most this."
    )
    roi: tuple[int, int, int, int] | None = Field(
        None,
        description="Send only this region (x, y, width, height) of the frame; classification "
        "only (a detection escalation carries the whole frame, as its boxes do).",
    )
    detection: DetectionEscalationSettings = Field(default_factory=DetectionEscalationSettings)

    @model_validator(mode="after")
    def _roi_has_area(self) -> EscalationSettings:
        if self.roi is not None and (min(self.roi[:2]) < 0 or min(self.roi[2:]) <= 0):
            raise ValueError(f"escalation.roi {self.roi} needs x, y >= 0 and width, height > 0")
        return self


class ZoneSettings(Section):
    """A polygon of the camera's view in which detections count (include) or not (exclude)."""

    name: str = Field(pattern=ID_PATTERN, description="Zone name, given in kept detections.")
    kind: Literal["include", "exclude"] = Field(
        "include", description="include: detections count here; exclude: dropped here."
    )
    points: list[tuple[float, float]] = Field(
        description="Polygon corners (x, y) as fractions 0..1 of the frame's width and height, "
        "so a zone survives a change of resolution: (0, 0) top left, (1, 1) bottom right."
    )

    @model_validator(mode="after")
    def _polygon(self) -> ZoneSettings:
        if len(self.points) < 3:
            raise ValueError(
                f"zone {self.name!r} has {len(self.points)} point(s): a polygon needs 3 or more"
            )
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(
                    f"zone {self.name!r}: point ({x}, {y}) is outside 0..1 (points are fractions "
                    "of the frame's width and height, not pixels)"
                )
        return self


class RuntimeSettings(Section):
    """Where the model runs: the CPU (XNNPACK, ``threads``) or an accelerator's delegate."""

    delegate: str | None = Field(
        None,
        min_length=1,
        description="LiteRT delegate library to run the model on: a path or a name the loader "
        "finds (Edge TPU: libedgetpu.so.1; GPU/NPU: the vendor's delegate .so). A library "
        "that fails to load is an error naming it and the reason; none = the CPU.",
    )
    delegate_options: dict[str, str] = Field(
        {}, description="Options passed to the delegate (e.g. device = usb:0 for an Edge TPU)."
    )
    delegate_fallback: bool = Field(
        False,
        description="When the delegate fails to load or to take the model, log a warning and "
        "run on the CPU instead of stopping; results and telemetry then say accelerator cpu.",
    )

    def accelerator(self) -> Accelerator | None:
        """The delegate as the runtime takes it; None for the CPU."""
        if self.delegate is None:
            return None
        options = tuple(sorted(self.delegate_options.items()))
        return Accelerator(self.delegate, options, self.delegate_fallback)

    @model_validator(mode="after")
    def _options_need_a_delegate(self) -> RuntimeSettings:
        if self.delegate is None and self.delegate_options:
            raise ValueError(
                f"runtime.delegate_options {self.delegate_options} need runtime.delegate"
            )
        return self


class AgentSettings(ComponentSettings):
    """Everything a device agent needs; validated once at start-up."""

    model_config = SettingsConfigDict(env_prefix="EC_AGENT_")

    site: str = Field("site1", pattern=ID_PATTERN, description="Site id.")
    device: str = Field("cam1", pattern=ID_PATTERN, description="Device id.")
    model: Path = Field(
        Path("models/fashion/fashion_edge_int8.tflite"), description="The .tflite model to run."
    )
    gateway_id: str | None = Field(
        "gateway",
        pattern=ID_PATTERN,
        description=(
            "Publish only while this site gateway's retained state is online, so nothing is "
            "sent to a site broker with nobody listening; none publishes whenever connected "
            "and keeps nothing for a confirmation (only a gateway confirms)."
        ),
    )
    threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Interpreter threads: cores - 1 leaves a core for the pipeline's other "
        "stages (steadiest latency); all cores give the most frames per second.",
    )
    model_public_key: Path | None = Field(
        None,
        description="PEM ed25519 key that signs model manifests; without it offers are refused.",
    )
    data_dir: Path = Field(Path("var/agent"), description="Outbox and state directory.")
    outbox_quota_mb: float = Field(256, gt=0, description="Disk quota of the outbox, MiB.")
    outbox_replay_s: ReplaySeconds = DEFAULT_REPLAY_S
    outbox_confirm_s: ConfirmSeconds = DEFAULT_CONFIRM_S
    outbox_sync: OutboxSync = DEFAULT_SYNC
    telemetry_interval_s: float = Field(5.0, gt=0, description="Seconds between telemetry.")
    drain_timeout_s: float = Field(
        10.0, ge=0, description="On stop, wait this long for the outbox to empty."
    )
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    gating: GatingSettings = Field(default_factory=GatingSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    zones: list[ZoneSettings] = Field(
        [],
        description="Detection models: polygons of this camera's view ([[zones]] in TOML). "
        "Detections whose anchor point lies in an exclude zone are dropped; with include zones, "
        "so are those outside all of them, and a kept one names its include zone.",
    )
    tags: Annotated[list[Tag], NoDecode] = Field(
        [],
        max_length=64,
        description="Tags of this device (zone:north, pilot; comma-separated in the environment), "
        "as provisioned (deploy provision-device --tag): reported in its state, the cloud adopts "
        "them for a device it has no tags for; an operator's tags (the API) win.",
    )
    zone_anchor: Literal["center", "bottom_center"] = Field(
        "bottom_center",
        description="The point of a box tested against the zones: its centre, or the middle of "
        "its bottom edge (where a person or a vehicle stands).",
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _comma_separated(cls, tags: object) -> object:
        if isinstance(tags, str):
            return [tag.strip() for tag in tags.split(",") if tag.strip()]
        return tags

    @property
    def confirm_s(self) -> float:
        """``outbox_confirm_s``, or 0 without a site gateway: nothing else confirms a device's
        results, so waiting for it would only send them again and again."""
        return self.outbox_confirm_s if self.gateway_id is not None else 0.0

    @model_validator(mode="after")
    def _model_is_tflite(self) -> AgentSettings:
        if self.model.suffix != ".tflite":
            raise ValueError(f"model must be a .tflite file, got {self.model}")
        names = [zone.name for zone in self.zones]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"zones {twice} are named more than once: zone names must be unique")
        return self
