"""Response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from edgecascade.cloud.dataset import LabelSource
from edgecascade.shared.fields import NO_NUL, DetectedObject, DetectionAgreement, Task
from edgecascade.shared.messages import Prediction
from edgecascade.shared.topics import ID_PATTERN


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class ResultOut(_FromRow):
    """One stored edge result."""

    msg_id: str
    site: str = Field(validation_alias="site_id")
    device: str = Field(validation_alias="device_id")
    frame_id: str
    captured_at: float = Field(description="Unix seconds.")
    received_at: float = Field(description="When the cloud received it, Unix seconds.")
    model_name: str
    model_version: str
    label: str = Field(description="Top-1 label.")
    label_index: int
    score: float
    top: list[Prediction]
    latency: dict[str, float] = Field(description="Stage latencies, milliseconds.")
    escalated: bool
    ground_truth: str | None
    model_sha256: str | None = Field(
        None, description="sha256 of the model file that produced it (null: not reported)."
    )
    policy: str | None = Field(
        None, description="The escalation policy in force (config version or rules fingerprint)."
    )
    final_label: str = Field(
        "",
        description="The answer that stands: a person's label, else the cloud's, else the edge's.",
    )
    final_source: Literal["edge", "cloud", "person"] = Field(
        "edge", description="Whose answer final_label is."
    )


class ResultPage(BaseModel):
    """One page of results, ordered by capture time then message id."""

    items: list[ResultOut]
    total: int = Field(description="Results matching the filters, over all pages.")
    limit: int
    offset: int


class DeviceOut(_FromRow):
    """A device (or gateway) and what the cloud last heard from it."""

    site: str = Field(validation_alias="site_id")
    device: str = Field(validation_alias="device_id")
    status: str = Field(description="online, offline, or unknown before its first state.")
    role: str | None
    session: int | None
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    software: str | None
    first_seen: float
    last_seen: float
    last_state_at: float | None
    clock_skew_s: float | None = Field(
        None,
        description="Receive time minus the device's send time of its last state, seconds: its "
        "clock's error (plus transit and any queueing delay). Capture times stay the device's.",
    )
    result_count: int


class DeviceList(BaseModel):
    items: list[DeviceOut]


class Health(BaseModel):
    """Liveness of the parts: 503 when the database is unreachable."""

    status: Literal["ok", "degraded"]
    database: bool
    mqtt: bool | None = Field(description="Ingest connected to the broker; null if not running.")


class VerdictOut(_FromRow):
    """The cloud model's answer on an escalated frame."""

    msg_id: str
    created_at: float
    worker_id: str
    model_name: str
    model_version: str
    label: str = Field(description="The cloud's top-1.")
    score: float
    top: list[Prediction]
    agrees: bool = Field(
        description="Classification: the edge's top-1 was the same; detection: every box matched."
    )
    inference_ms: float
    task: Task = "classification"
    detections: list[DetectedObject] = Field([], description="Detection: the cloud's boxes.")
    agreement: DetectionAgreement | None = Field(
        None, description="Detection: the edge's boxes scored against the cloud's."
    )


class EscalationOut(_FromRow):
    """An escalated frame, the edge's answer and (once a worker gave it) the cloud's."""

    msg_id: str
    result_id: str
    site: str = Field(validation_alias="site_id")
    device: str = Field(validation_alias="device_id")
    frame_id: str
    captured_at: float
    received_at: float
    model_name: str
    model_version: str
    edge_label: str
    edge_score: float
    reason: str
    content_type: str
    width: int
    height: int
    ground_truth: str | None
    audit: bool = Field(description="A random audit sample of a frame the edge was sure of.")
    task: Task = "classification"
    edge_detections: Annotated[list[DetectedObject], BeforeValidator(lambda v: v or [])] = Field(
        [],
        validation_alias="detections",
        description="Detection: the edge's boxes, in pixels of this frame (the verdict's too).",
    )
    frame_url: str = Field(description="The frame itself (same token).")
    verdict: VerdictOut | None
    final_label: str | None = Field(
        None, description="A person's label if one was given, else the cloud's top-1."
    )
    label_source: LabelSource | None = Field(
        None, description="human or cloud; null without a verdict or a person's label."
    )


class EscalationPage(BaseModel):
    """One page of escalations, ordered by capture time then message id."""

    items: list[EscalationOut]
    total: int
    limit: int
    offset: int


class LabelIn(BaseModel):
    """A person's label for an escalated frame."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(
        min_length=1, max_length=128, pattern=NO_NUL, description="One of the edge model's labels."
    )
    note: str = Field("", max_length=2000, pattern=NO_NUL, description="Why; may be empty.")


class LabelOut(_FromRow):
    """A person's label as stored."""

    escalation_id: str
    label: str
    note: str
    created_by: str = Field(description="The token that set it.")
    created_at: float


class LabelQueueItem(BaseModel):
    """A disagreement waiting for a person: the frame, both answers, the labels to pick from."""

    msg_id: str
    site: str
    device: str
    captured_at: float
    frame_url: str = Field(description="The frame itself (same token).")
    edge_model: str = Field(description="name@version of the edge model.")
    edge_label: str
    edge_score: float
    cloud_model: str = Field(description="name@version of the cloud model.")
    cloud_label: str
    cloud_score: float
    labels: list[str] | None = Field(
        description="The edge model's labels, the ones a person may pick; null if unknown."
    )


class LabelQueue(BaseModel):
    """Disagreements without a person's label, newest first."""

    items: list[LabelQueueItem]
    total: int = Field(description="Waiting in all, beyond this page too.")


class TokenIn(BaseModel):
    """A token to create."""

    name: str = Field(pattern=ID_PATTERN, description="Unique; names the holder.")
    role: Literal["viewer", "operator", "admin"]


class TokenOut(_FromRow):
    """A token as listed: never the token itself."""

    name: str
    role: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token: shown once, only its hash is stored.")


class TokenList(BaseModel):
    items: list[TokenOut]


class ModelOut(_FromRow):
    """A registered model version."""

    name: str
    version: str
    sha256: str
    size_bytes: int
    num_classes: int
    input_spec: dict[str, JsonValue] = Field(description="The input tensor, as loaded.")
    output_spec: dict[str, JsonValue] = Field(description="The output tensor, as loaded.")
    created_at: float
    created_by: str


class TrainableFields(BaseModel):
    """A trainable source as the API takes and shows it; the weights' file name is the
    registry's business."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str = Field(max_length=64, description="The network the trainer rebuilds.")
    weights_sha256: str = Field(
        pattern="^[0-9a-f]{64}$", description="sha256 (hex) of the weights file, the state_dict."
    )


def _trainable_of(card: Any) -> Any:
    """The stored card's trainable source, without the weights' file name (None: none)."""
    source = card.get("trainable") if isinstance(card, dict) else None
    if not isinstance(source, dict):
        return source
    return {key: source.get(key) for key in ("architecture", "weights_sha256")}


class ModelDetail(ModelOut):
    manifest: dict[str, JsonValue] = Field(description="The signed manifest devices are sent.")
    trainable: Annotated[TrainableFields | None, BeforeValidator(_trainable_of)] = Field(
        validation_alias="card",
        description="What the trainer can fine-tune it from; null: it is not trainable.",
    )


class ModelList(BaseModel):
    items: list[ModelOut]


class RolloutOut(_FromRow):
    """A rollout, where it stands and why."""

    id: str
    site: str = Field(validation_alias="site_id")
    model_name: str
    model_version: str
    baseline_name: str
    baseline_version: str
    state: str = Field(description="running, paused, completed, rolling_back or rolled_back.")
    stages: list[float]
    stage: int
    targets: list[str]
    offered: list[str]
    device_states: dict[str, str] = Field(
        {}, description="Newest ack per device offered: the model's, then the rollback's."
    )
    reason: str = Field(description="Why it stopped, or what it waits for.")
    criteria: dict[str, float]
    evaluation: dict[str, JsonValue] = Field(description="The last quality comparison.")
    created_at: float
    updated_at: float
    created_by: str


class RolloutList(BaseModel):
    items: list[RolloutOut]


class AbortIn(BaseModel):
    reason: str = Field("", max_length=500, description="Why; recorded with the rollback.")


class PauseIn(BaseModel):
    reason: str = Field("", max_length=500, description="Why; shown with the paused rollout.")


class CalibrationOut(BaseModel):
    """A fitted temperature, now in the model's manifest."""

    temperature: float = Field(description="The manifest's temperature now (old x fitted).")
    fitted: float = Field(description="The factor fitted on the stored verdicts.")
    samples: int
    nll_before: float = Field(description="Mean NLL of the cloud's labels before.")
    nll_after: float
    manifest: dict[str, JsonValue]


class SiteOut(BaseModel):
    """A site and a summary of its fleet."""

    site: str
    first_seen: float
    last_seen: float
    devices: int
    online: int = Field(description="Devices whose last state is online.")
    results: int


class SiteList(BaseModel):
    items: list[SiteOut]


class TelemetryPoint(BaseModel):
    """One sample of a device's telemetry (``fields`` holds what was asked for)."""

    ts: float
    cpu_percent: float
    memory_percent: float
    temperature_c: float | None
    fps: float
    frames: int
    fields: dict[str, float | None] = Field(
        {}, description="Values at the dotted paths asked for, e.g. latency_ms.invoke.p50."
    )


class TelemetrySeries(BaseModel):
    """A device's telemetry over time, oldest first."""

    site: str
    device: str
    points: list[TelemetryPoint]


class EscalatedDisagreement(BaseModel):
    """How often the cloud disagreed on escalated frames: biased, always labelled so."""

    verdicts: int
    disagreeing: int
    disagreement: float | None = Field(description="disagreeing / verdicts; null without any.")
    biased: Literal[True] = True
    note: str


class AccuracyOut(BaseModel):
    """The live accuracy of one edge model at one site, against the cloud, from audit samples."""

    site: str
    model_name: str = Field(description="The edge model.")
    model_version: str
    audited: int = Field(description="Audit samples with a verdict.")
    agreeing: int = Field(description="Of those, how many the edge got right.")
    estimate: float | None = Field(description="agreeing / audited; null without samples.")
    low: float = Field(description="Lower end of the Wilson interval.")
    high: float = Field(description="Upper end of the Wilson interval.")
    escalated: EscalatedDisagreement


class AccuracyList(BaseModel):
    """Per site and edge model; ``confidence`` is the intervals' level."""

    site: str | None
    since: float | None
    confidence: float
    items: list[AccuracyOut]
