"""The cloud's tables, as SQLAlchemy 2.x typed declarative models.

Times are Unix seconds in double-precision floats (the wire format), so nothing depends on time
zones. Every message-derived row is keyed by the message's ``msg_id``: inserting a redelivered
message is a no-op, which makes ingest exactly-once in effect. Frames live in the blob store;
rows keep their path relative to it.

Alembic migrations in ``cloud/migrations/versions`` must match these models; a test compares them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, MetaData, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MSG_ID = String(36)
IDENT = String(64)
LABEL = String(128)
TASK = String(16)
CLASSIFICATION = "classification"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {float: Double(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Site(Base):
    """A site (one gateway and its cameras), created on its first message."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    first_seen: Mapped[float]
    last_seen: Mapped[float]


class Device(Base):
    """A device or gateway of a site: last known state and when it was last heard from.

    ``status`` is ``online``/``offline`` from the device's state messages, ``unknown`` until the
    first one arrives (a device can be heard from through its results first).
    """

    __tablename__ = "devices"

    site_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    device_id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    session: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str | None] = mapped_column(String(16))
    model_name: Mapped[str | None] = mapped_column(IDENT)
    model_version: Mapped[str | None] = mapped_column(IDENT)
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    software: Mapped[str | None] = mapped_column(IDENT)
    first_seen: Mapped[float]
    last_seen: Mapped[float] = mapped_column(comment="Newest message time heard from it.")
    last_state_at: Mapped[float | None] = mapped_column(comment="Time of the state applied.")
    config_version: Mapped[int | None] = mapped_column(
        BigInteger, comment="The remote config version its state says it runs."
    )
    clock_skew_s: Mapped[float | None] = mapped_column(
        comment="The cloud's receive time minus the device's send time of its last state: its "
        "clock's error plus the transit (and any queueing) delay."
    )


class Result(Base):
    """One edge inference result; ``msg_id`` is the idempotency key."""

    __tablename__ = "results"
    __table_args__ = (
        Index(None, "site_id", "device_id", "captured_at"),
        Index(None, "captured_at"),
    )

    msg_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    frame_id: Mapped[str] = mapped_column(String(256))
    captured_at: Mapped[float]
    received_at: Mapped[float]
    model_name: Mapped[str] = mapped_column(IDENT)
    model_version: Mapped[str] = mapped_column(IDENT)
    label: Mapped[str] = mapped_column(LABEL, comment="Top-1 label.")
    label_index: Mapped[int]
    score: Mapped[float]
    top: Mapped[list[Any]] = mapped_column(comment="Top-k predictions: [{index, label, score}].")
    latency: Mapped[dict[str, Any]] = mapped_column(comment="Stage latencies, milliseconds.")
    escalated: Mapped[bool]
    ground_truth: Mapped[str | None] = mapped_column(LABEL)
    task: Mapped[str] = mapped_column(
        TASK,
        server_default=CLASSIFICATION,
        comment="classification, or detection (boxes in "
        "the detections table; label is the best box's, empty without boxes).",
    )
    model_sha256: Mapped[str | None] = mapped_column(
        String(64), comment="sha256 of the model file that produced it (empty: not reported)."
    )
    policy: Mapped[str | None] = mapped_column(
        String(64),
        comment="The escalation policy in force: config version or rules fingerprint.",
    )


class Escalation(Base):
    """An escalated frame: the edge's answer and where the image is in the blob store."""

    __tablename__ = "escalations"
    __table_args__ = (
        Index(None, "site_id", "device_id", "captured_at"),
        Index(None, "result_id"),
    )

    msg_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    result_id: Mapped[str] = mapped_column(MSG_ID)
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    frame_id: Mapped[str] = mapped_column(String(256))
    captured_at: Mapped[float]
    received_at: Mapped[float]
    model_name: Mapped[str] = mapped_column(IDENT)
    model_version: Mapped[str] = mapped_column(IDENT)
    edge_label: Mapped[str] = mapped_column(LABEL)
    edge_score: Mapped[float]
    reason: Mapped[str] = mapped_column(Text)
    blob_path: Mapped[str] = mapped_column(String(512), comment="Relative to the blob store.")
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    roi: Mapped[list[Any] | None] = mapped_column(comment="[x, y, w, h] of a crop, if cropped.")
    ground_truth: Mapped[str | None] = mapped_column(LABEL)
    audit: Mapped[bool] = mapped_column(
        server_default=false(), comment="A random audit sample of a sure frame, not an unsure one."
    )
    task: Mapped[str] = mapped_column(TASK, server_default=CLASSIFICATION)
    frame_purged_at: Mapped[float | None] = mapped_column(
        comment="When retention deleted the frame (the row and its verdict stay)."
    )
    detections: Mapped[list[Any] | None] = mapped_column(
        comment="Detection: the edge's boxes as sent, in pixels of this frame."
    )


class Telemetry(Base):
    """A device health report; the whole message is kept in ``payload``."""

    __tablename__ = "telemetry"
    __table_args__ = (Index(None, "site_id", "device_id", "ts"),)

    msg_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    ts: Mapped[float]
    received_at: Mapped[float]
    cpu_percent: Mapped[float]
    memory_percent: Mapped[float]
    temperature_c: Mapped[float | None]
    fps: Mapped[float]
    frames: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]]


class Verdict(Base):
    """The cloud model's answer to one escalation; ``escalation_id`` is the idempotency key.

    ``audit`` copies the escalation's: only audit verdicts estimate the edge model's accuracy
    (:mod:`cloud.accuracy`). ``probs`` are the soft targets a fine-tuned edge model learns from.

    ``msg_id`` is the verdict message sent back to the device: a worker that handles the same
    escalation again (redelivered after a crash) sends the stored verdict again, same id.
    """

    __tablename__ = "verdicts"
    __table_args__ = (
        Index(None, "site_id", "device_id", "created_at"),
        Index(None, "edge_model_name", "edge_model_version"),
    )

    escalation_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    msg_id: Mapped[str] = mapped_column(MSG_ID, unique=True)
    result_id: Mapped[str] = mapped_column(MSG_ID)
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    created_at: Mapped[float]
    worker_id: Mapped[str] = mapped_column(IDENT)
    model_name: Mapped[str] = mapped_column(IDENT, comment="The cloud model.")
    model_version: Mapped[str] = mapped_column(IDENT)
    model_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(LABEL, comment="The cloud's top-1.")
    label_index: Mapped[int]
    score: Mapped[float]
    top: Mapped[list[Any]] = mapped_column(comment="Top-k predictions: [{index, label, score}].")
    edge_model_name: Mapped[str] = mapped_column(IDENT)
    edge_model_version: Mapped[str] = mapped_column(IDENT)
    edge_label: Mapped[str] = mapped_column(LABEL)
    edge_score: Mapped[float]
    agrees: Mapped[bool] = mapped_column(comment="Cloud top-1 equals the edge's top-1.")
    inference_ms: Mapped[float] = mapped_column(comment="Decode, preprocess, invoke, postprocess.")
    audit: Mapped[bool] = mapped_column(
        server_default=false(), comment="Of an audit sample: unbiased evidence of edge accuracy."
    )
    probs: Mapped[list[Any] | None] = mapped_column(
        comment="The cloud model's whole output distribution, in the order of its labels."
    )
    task: Mapped[str] = mapped_column(TASK, server_default=CLASSIFICATION)
    agreement: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Detection: the edge's boxes against the cloud's (shared.boxes.agreement)."
    )
    edge_precision: Mapped[float | None] = mapped_column(comment="Detection: of the edge.")
    edge_recall: Mapped[float | None] = mapped_column(comment="Detection: of the edge.")


class DetectedBox(Base):
    """One box of a detection answer: the edge's (from its result) or the cloud's (from its
    verdict on the escalated frame), one row per box, so boxes are counted and filtered in SQL.

    Keyed by the result, the source and the box's place in its answer (best first): a result
    or a verdict stored again adds nothing. ``captured_at`` is the result's capture time for
    both sources. The box is in pixels of the frame its source saw (``frame_width`` x
    ``frame_height``: the edge's frame, or the escalated one, which may be downscaled).
    """

    __tablename__ = "detections"
    __table_args__ = (
        Index(None, "label", "captured_at"),
        Index(None, "site_id", "captured_at"),
        Index(None, "device_id", "captured_at"),
    )

    result_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(8), primary_key=True, comment="edge or cloud.")
    position: Mapped[int] = mapped_column(primary_key=True, comment="0: the best box.")
    escalation_id: Mapped[str | None] = mapped_column(MSG_ID, comment="The cloud's: judged.")
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    captured_at: Mapped[float]
    model_name: Mapped[str] = mapped_column(IDENT)
    model_version: Mapped[str] = mapped_column(IDENT)
    label: Mapped[str] = mapped_column(LABEL)
    score: Mapped[float]
    x0: Mapped[float]
    y0: Mapped[float]
    x1: Mapped[float]
    y1: Mapped[float]
    zone: Mapped[str | None] = mapped_column(IDENT)
    frame_width: Mapped[int | None]
    frame_height: Mapped[int | None]


class ApiToken(Base):
    """An API token: only its sha256 is stored; the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(IDENT, primary_key=True)
    role: Mapped[str] = mapped_column(String(16), comment="viewer, operator or admin.")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float]
    last_used_at: Mapped[float | None]
    revoked_at: Mapped[float | None]


class ModelVersion(Base):
    """A registered model: the artifact (in the model store, by sha256) and its signed manifest.

    ``input_spec``/``output_spec`` are what the interpreter reported when the upload was loaded;
    ``manifest`` is exactly what devices are sent (signed by the service's key).
    """

    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(IDENT, primary_key=True)
    version: Mapped[str] = mapped_column(IDENT, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    num_classes: Mapped[int]
    input_spec: Mapped[dict[str, Any]]
    output_spec: Mapped[dict[str, Any]]
    manifest: Mapped[dict[str, Any]]
    created_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(IDENT, comment="Name of the token that uploaded it.")
    card: Mapped[dict[str, Any] | None] = mapped_column(
        comment="The model card as uploaded (trainable source, lineage), when there was one."
    )


class ModelAck(Base):
    """A device's report on applying a model (downloading ... committed, rolled_back, failed)."""

    __tablename__ = "model_acks"
    __table_args__ = (
        Index(None, "rollout_id", "site_id", "device_id"),
        Index(None, "site_id", "device_id", "ts"),
    )

    msg_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(IDENT)
    device_id: Mapped[str] = mapped_column(IDENT)
    rollout_id: Mapped[str] = mapped_column(IDENT)
    version: Mapped[str] = mapped_column(IDENT)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    ts: Mapped[float]
    received_at: Mapped[float]


class Rollout(Base):
    """A staged rollout of a registered model to devices of a site.

    ``state``: running, paused, completed, rolling_back, rolled_back. ``stage`` indexes ``stages``
    (percentages of the targets). ``baseline_*`` is what the targets ran when it started: the
    model quality is compared with, and rolled back to.
    """

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    site_id: Mapped[str] = mapped_column(IDENT)
    targets: Mapped[list[Any]] = mapped_column(comment="Device ids in scope, in offer order.")
    model_name: Mapped[str] = mapped_column(IDENT)
    model_version: Mapped[str] = mapped_column(IDENT)
    sha256: Mapped[str] = mapped_column(String(64))
    baseline_name: Mapped[str] = mapped_column(IDENT)
    baseline_version: Mapped[str] = mapped_column(IDENT)
    baseline_sha256: Mapped[str] = mapped_column(String(64))
    stages: Mapped[list[Any]] = mapped_column(comment="Percentages of the targets, increasing.")
    stage: Mapped[int]
    stage_started_at: Mapped[float]
    criteria: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, comment="Why it stopped, or what it waits for.")
    evaluation: Mapped[dict[str, Any]] = mapped_column(comment="The last quality comparison.")
    offered: Mapped[list[Any]] = mapped_column(comment="Device ids offered the model so far.")
    created_at: Mapped[float]
    updated_at: Mapped[float]
    created_by: Mapped[str] = mapped_column(IDENT)


class LabelOverride(Base):
    """A person's label for an escalated frame: it wins over the cloud's verdict everywhere (the
    API's final label, the exported dataset). One per escalation; withdrawing deletes it."""

    __tablename__ = "label_overrides"

    escalation_id: Mapped[str] = mapped_column(MSG_ID, primary_key=True)
    label: Mapped[str] = mapped_column(LABEL, comment="One of the edge model's labels.")
    created_by: Mapped[str] = mapped_column(IDENT, comment="Name of the token that set it.")
    created_at: Mapped[float]
    note: Mapped[str] = mapped_column(Text, comment="Why, in the operator's words; may be empty.")


class TrainingRun(Base):
    """A fine-tuning run of a site's edge model: queued, claimed by a trainer, decided.

    ``state``: queued, running, succeeded (trained and evaluated; registered, not rolled out),
    shipped (a rollout started: ``rollout_id``), rejected (the gates said no: ``reason``),
    failed (``reason``). A running run's trainer moves ``heartbeat_at``; one that stops moving
    is failed by the next trainer to start.
    """

    __tablename__ = "training_runs"
    __table_args__ = (Index(None, "state", "created_at"), Index(None, "site_id", "created_at"))

    id: Mapped[str] = mapped_column(IDENT, primary_key=True)
    site_id: Mapped[str] = mapped_column(IDENT)
    state: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(Text, comment="Who or what queued it, and why.")
    parent_name: Mapped[str | None] = mapped_column(IDENT)
    parent_version: Mapped[str | None] = mapped_column(IDENT)
    child_version: Mapped[str | None] = mapped_column(IDENT)
    snapshot_id: Mapped[str | None] = mapped_column(IDENT, comment="The dataset trained on.")
    dataset_size: Mapped[int | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(comment="report.json's result: before/after.")
    reason: Mapped[str] = mapped_column(Text, comment="The gates' decision, or why it failed.")
    log: Mapped[str] = mapped_column(Text, comment="The run's captured log lines.")
    trainer_id: Mapped[str | None] = mapped_column(IDENT, comment="The trainer that claimed it.")
    heartbeat_at: Mapped[float | None]
    created_at: Mapped[float]
    started_at: Mapped[float | None]
    finished_at: Mapped[float | None]
    rollout_id: Mapped[str | None] = mapped_column(IDENT)


# The fleet's tables (remote config, tags) live in their own module; importing it here puts them
# on Base.metadata wherever the models are loaded (migrations, the schema comparison).
from edgecascade.cloud.db import fleet_models as _fleet_models  # noqa: E402, F401
