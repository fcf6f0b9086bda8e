"""One pydantic model per message kind; the payload half of the contract (topics are the other).

Every message has ``schema_version`` and a UUIDv7 ``msg_id`` (time-ordered, unique) so each hop can
de-duplicate: delivery is at-least-once on the wire and exactly-once in effect. JSON kinds travel as
UTF-8 JSON; escalations and model chunks carry bytes and travel in the binary frame codec
(:mod:`shared.framecodec`) with one of these models as the header.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from edgecascade.shared.fields import (
    INT32_MAX,
    INT64_MAX,
    MAX_FRAME_PIXELS,
    NO_NUL,
    STRICT,
    ConfigVersion,
    DetectionAgreement,
    Detections,
    FrameId,
    Ident,
    Label,
    MessageId,
    Omitting,
    OmitWhen,
    PlainJson,
    Sha256,
    ShortText,
    Side,
    Tag,
    Task,
    Version,
)
from edgecascade.shared.ids import new_message_id


class Message(Omitting):
    """Fields every message carries."""

    model_config = STRICT

    schema_version: Literal[1] = Field(1, description="Payload schema version.")
    msg_id: MessageId = Field(default_factory=new_message_id, description="UUIDv7, unique.")
    ts: float = Field(default_factory=time.time, ge=0, description="Creation time, Unix seconds.")


class ModelRef(BaseModel):
    """Which model produced something."""

    model_config = STRICT

    name: Ident
    version: Version
    sha256: Sha256 | Literal[""] = ""


class Prediction(BaseModel):
    """One class and its probability."""

    model_config = STRICT

    index: int = Field(ge=0, le=INT32_MAX)
    label: Label
    score: float = Field(ge=0.0, le=1.0)


Predictions = Annotated[list[Prediction], Field(max_length=10)]


class _Answer(Omitting):
    """What a classification or a detection answer carries: ``top`` (at least one class) for
    classification; ``detections`` for detection, where ``top`` is optional (a per-label
    summary: each label found and its best score)."""

    model_config = STRICT

    # The detection fields are left out of a classification message's JSON (``OmitWhen``):
    # classification messages stay byte for byte what they were.
    task: Annotated[Task, OmitWhen(lambda task: task == "classification")] = Field(
        "classification",
        description="classification: top carries the answer; detection: detections do.",
    )
    detections: Annotated[Detections, OmitWhen(lambda boxes: not boxes)] = Field(
        [],
        description="Boxes of a detection model, best first.",
    )

    def _check_task(self, top: list[Prediction]) -> None:
        if self.task == "classification":
            if not top:
                raise ValueError("a classification answer needs at least one prediction in top")
            if self.detections:
                raise ValueError("a classification answer carries no detections")


class StateMessage(Message):
    """Retained device or gateway availability; the LWT publishes ``offline``."""

    status: Literal["online", "offline"]
    session: int = Field(
        0, ge=0, le=INT64_MAX, description="Start time of this process (ms): a session epoch."
    )
    role: Literal["agent", "gateway", "cloud", "worker"] = "agent"
    model: ModelRef | None = None
    capabilities: Annotated[list[Ident], Field(max_length=32)] = []
    software: Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL)] = ""
    detail: ShortText = ""
    config_version: Annotated[ConfigVersion | None, OmitWhen(lambda v: v is None)] = Field(
        None, description="Remote config version in force (agents)."
    )
    tags: Annotated[list[Tag], Field(max_length=64), OmitWhen(lambda tags: not tags)] = Field(
        [], description="Provisioned tags (agents)."
    )


class ResultMessage(Message, _Answer):
    """One inference result from a device: classes (``top``) or boxes (``detections``)."""

    frame_id: FrameId
    captured_at: float = Field(ge=0, description="When the frame was captured, Unix seconds.")
    model: ModelRef
    top: Predictions
    latency_ms: dict[Ident, Annotated[float, Field(ge=0)]] = {}
    escalated: bool = False
    ground_truth: Label | None = Field(None, description="Known label of a labelled test frame.")
    accelerator: Label = Field(
        "cpu", description="What ran the model: cpu, or the delegate library's name."
    )
    frame_size: Annotated[tuple[Side, Side] | None, OmitWhen(lambda size: size is None)] = Field(
        None,
        description="(width, height) of the frame the boxes are in; detection results.",
    )
    policy: Annotated[Version | None, OmitWhen(lambda policy: policy is None)] = Field(
        None,
        description="The escalation policy in force: config-<version> of the remote "
        "configuration, else a fingerprint of the agent's escalation and gating settings.",
    )

    @model_validator(mode="after")
    def _task(self) -> ResultMessage:
        self._check_task(self.top)
        return self


class BatchedResult(BaseModel):
    """A device result inside a gateway batch."""

    model_config = STRICT

    device: Ident
    result: ResultMessage


class ResultBatchMessage(Message):
    """Results of several devices of one site, aggregated by the gateway."""

    results: Annotated[list[BatchedResult], Field(min_length=1, max_length=10_000)]


class EscalationHeader(Message, _Answer):
    """Header of an escalated frame; the image bytes follow it in the frame codec. A detection
    escalation carries the edge's boxes (in pixels of this frame)."""

    result_id: MessageId = Field(description="msg_id of the edge result this frame belongs to.")
    frame_id: FrameId
    captured_at: float = Field(ge=0)
    model: ModelRef
    top: Predictions
    reason: ShortText = Field("", description="Which policy rule escalated the frame.")
    content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, w, h of a crop.")
    ground_truth: Label | None = None
    audit: bool = Field(
        False,
        description="A random audit sample of a frame the policy was sure of, not an unsure one: "
        "the unbiased evidence of the edge model's accuracy.",
    )

    @model_validator(mode="after")
    def _bounded_pixels(self) -> EscalationHeader:
        self._check_task(self.top)
        # What a worker allocates to decode the frame (the codec checks that the image really is
        # this size): an 8K frame fits, a 16384 x 16384 one (a 260 KB PNG, 805 MB decoded) not.
        if self.width * self.height > MAX_FRAME_PIXELS:
            raise ValueError(
                f"a {self.width}x{self.height} frame has more than {MAX_FRAME_PIXELS} pixels"
            )
        return self


class Percentiles(BaseModel):
    model_config = STRICT

    p50: float = Field(ge=0)
    p95: float = Field(ge=0)
    p99: float = Field(ge=0)


class TelemetryMessage(Message):
    """Device health and pipeline figures, every few seconds."""

    cpu_percent: float = Field(ge=0)
    memory_percent: float = Field(ge=0, le=100)
    memory_rss_mb: float = Field(ge=0)
    temperature_c: float | None = None
    fps: float = Field(ge=0)
    frames: int = Field(0, ge=0, le=INT64_MAX, description="Frames processed since start.")
    latency_ms: dict[Ident, Percentiles] = {}
    queues: dict[Ident, Annotated[int, Field(ge=0, le=INT64_MAX)]] = {}
    counters: dict[Ident, Annotated[int, Field(ge=0, le=INT64_MAX)]] = Field(
        {}, description="Monotonic counters: drops, escalations, outbox sent/expired/dropped..."
    )
    model: ModelRef | None = None
    accelerator: Label = Field(
        "cpu", description="What runs the model: cpu, or the delegate library's name."
    )
    disk_percent: float | None = Field(
        None, ge=0, le=100, description="Use of the filesystem holding the data directory."
    )
    uptime_s: float | None = Field(None, ge=0, description="Since the machine booted.")
    agent_uptime_s: float | None = Field(None, ge=0, description="Since the agent started.")
    inferences: int = Field(0, ge=0, le=INT64_MAX, description="Model runs since start.")
    latency_mean_ms: float | None = Field(
        None, ge=0, description="Mean model run (invoke) time over the recent window."
    )


class FieldStats(BaseModel):
    """One numeric telemetry field over a rollup window."""

    model_config = STRICT

    min: float
    mean: float
    max: float
    last: float


class TelemetryRollupMessage(Message):
    """A device's telemetry over one window, summarised by the site gateway.

    ``fields`` holds min/mean/max/last of every numeric field of the samples (``cpu_percent``,
    ``fps``, ``latency_ms.invoke.p50``, ``queues.outbox.result``, ``counters.sent.result``...);
    ``last`` is the newest sample, whole.
    """

    window_start: float = Field(ge=0)
    window_end: float = Field(ge=0)
    samples: int = Field(ge=1)
    fields: dict[Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)], FieldStats] = (
        Field(max_length=2000)
    )
    last: TelemetryMessage


class VerdictMessage(Message, _Answer):
    """The cloud's answer to an escalation, correlated by ``escalation_id``: its classes, or its
    boxes and how the edge's compare (``agreement``)."""

    escalation_id: MessageId
    result_id: MessageId
    model: ModelRef
    top: Predictions
    agrees: bool = Field(
        description="Classification: the cloud's top-1 equals the edge's top-1. Detection: every "
        "box matched both ways (precision and recall 1)."
    )
    agreement: Annotated[DetectionAgreement | None, OmitWhen(lambda a: a is None)] = Field(
        None, description="Detection verdicts."
    )

    @model_validator(mode="after")
    def _task(self) -> VerdictMessage:
        self._check_task(self.top)
        return self


class AckMessage(Message):
    """The next hop's word that it has committed these messages (its outbox or its database):
    the sender may forget them. Hop by hop, not relayed: the gateway confirms a device's
    messages on the site broker, the cloud the gateway's on the cloud broker."""

    msg_ids: Annotated[list[MessageId], Field(min_length=1, max_length=1000)]


class CommandMessage(Message):
    """A request; never retained, answered on ``reply/<name>`` with the same correlation."""

    correlation: MessageId
    args: dict[Ident, PlainJson] = {}


class ReplyMessage(Message):
    """The answer to a command: ``{status, data, error, correlation}``."""

    correlation: MessageId
    status: Literal["ok", "error"]
    data: PlainJson = None
    error: ShortText | None = None


class DeadLetterMessage(Message):
    """A message that failed validation, kept with the reason instead of being dropped silently."""

    topic: Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)]
    reason: ShortText
    payload_size: int = Field(ge=0)
    payload_head: Annotated[str, StringConstraints(max_length=512, pattern=r"^[0-9a-f]*$")] = Field(
        "", description="The first bytes of the payload, hex."
    )
