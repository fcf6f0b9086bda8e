"""Settings of the cloud service: TOML file, then ``EC_CLOUD_*`` environment, then CLI flags.

Load them once at start-up with ``shared.config.load_settings(CloudSettings, path, overrides)``;
for example ``EC_CLOUD_MQTT__HOST=broker`` or ``EC_CLOUD_HTTP__PORT=9000``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from edgecascade.cloud.alerts.config import AlertsSection
from edgecascade.cloud.camera_settings import CameraSection
from edgecascade.cloud.retention_settings import RetentionSection
from edgecascade.shared.config import ComponentSettings, MqttSettings, Section
from edgecascade.shared.topics import ID_PATTERN


class HttpSection(Section):
    """Where the HTTP API listens."""

    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the API.")


class RegistrySection(Section):
    """The model registry."""

    max_model_mb: float = Field(
        64, gt=0, le=4096, description="Largest model file accepted for upload, MiB."
    )
    signing_key: Path | None = Field(
        None,
        description="ed25519 private key (PEM) that signs manifests; by default "
        "data_dir/keys/manifest-signing.key (`edgecascade cloud keys generate` writes it).",
    )
    chunk_kib: int = Field(
        64, ge=1, le=1024, description="Chunk size devices download the model in, KiB."
    )


class RolloutCriteria(Section):
    """When a rollout stage may widen, and when the new model is rolled back."""

    stage_min_s: float = Field(
        300.0, ge=0, description="Shortest time a stage runs before it may widen."
    )
    min_verdicts: int = Field(
        30,
        ge=1,
        description="Cloud verdicts on the new model's escalations needed to judge it, and on "
        "the baseline's to compare with; a stage widens only once both are there.",
    )
    baseline_lookback_s: float = Field(
        3600.0,
        ge=0,
        description="The baseline is measured from this long before the rollout began (so a "
        "rollout to every camera at once still has something to compare with).",
    )
    max_disagreement_increase: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Roll back when the share of escalations the cloud disagrees with rises "
        "by more than this over the baseline model's.",
    )
    max_escalation_increase: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Roll back when the share of results escalated rises by more than this.",
    )
    min_results: int = Field(
        200, ge=1, description="Results on each side needed to compare escalation rates."
    )
    max_latency_ratio: float = Field(
        2.0, gt=1, description="Roll back when median invoke time grows by more than this factor."
    )
    max_failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Roll back when this share of the devices offered the model report failed.",
    )


class RolloutSection(Section):
    """Staged rollouts, run by the controller in ``edgecascade cloud``."""

    interval_s: float = Field(5.0, gt=0, description="Seconds between evaluations.")
    resend_s: float = Field(
        60.0,
        gt=0,
        description="Offer again to a device that has not answered an offer (or a rollback) "
        "for this long: offers lost with a crashed replica or a long outage are not waited "
        "for forever. Devices ignore an offer they have already handled.",
    )
    offer_ttl_s: float = Field(
        3600.0,
        gt=0,
        description="Each offer is signed with a sequence and expires this long after it was "
        "sent: a device refuses it later (and a replayed old one always); an unanswered device "
        "gets a fresh one after resend_s.",
    )
    criteria: RolloutCriteria = Field(
        default_factory=RolloutCriteria, description="Defaults; a rollout may override them."
    )


class FleetSection(Section):
    """Remote configuration and commands to devices (``cmd/config``, ``cmd/diagnostics``)."""

    interval_s: float = Field(5.0, gt=0, description="Seconds between config drift checks.")
    resend_s: float = Field(
        60.0,
        gt=0,
        description="Send a device's desired config again when its state still reports another "
        "version this long after the last send (a refused version is not sent again).",
    )
    command_timeout_s: float = Field(
        10.0, gt=0, le=300, description="The API's wait for a device's diagnostics; then 504."
    )


class ApiSection(Section):
    """Who may use the HTTP API."""

    anonymous_read: bool = Field(
        False,
        description="Let requests without a token read (GET); writes always need a token. For a "
        "closed network or a demo only.",
    )


class IngestSection(Section):
    """How messages flow from the broker into the database."""

    batch_size: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most messages committed in one transaction; also the MQTT receive maximum.",
    )
    flush_interval_s: float = Field(
        0.2, gt=0, le=60, description="Longest wait for a batch to fill before committing it."
    )
    share_group: str = Field(
        "ingest",
        pattern=ID_PATTERN,
        description="MQTT 5 shared-subscription group: replicas in one group split the stream.",
    )


class DetectionSection(Section):
    """The cloud detector: the worker's model for escalations whose task is detection."""

    model: Path | None = Field(
        None,
        description="The cloud detection model (.tflite with its card, task detection), e.g. "
        "models/faces/face_full_range.tflite; unset: detection escalations are rejected "
        "(counted, logged, acknowledged).",
    )
    tile: int | None = Field(
        None,
        ge=0,
        le=16384,
        description="Sliced inference: tile side in pixels, run besides the whole frame; unset: "
        "about twice the model's input side when the frame is large enough (auto_tile); 0: "
        "the whole frame only.",
    )
    overlap: float = Field(0.25, ge=0, lt=1, description="Share of a tile its neighbour overlaps.")
    score_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Boxes scored below it are dropped; unset: the model card's threshold.",
    )
    iou_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="IoU at which an edge box matches the cloud's (same label) in the agreement.",
    )


class WorkerSection(Section):
    """Re-inference workers (``edgecascade cloud worker``): the heavy model on escalations."""

    worker_id: str = Field(
        "worker-1",
        pattern=ID_PATTERN,
        description="Unique and stable per worker: its MQTT session (and what the broker holds "
        "for it while it restarts) is keyed by it.",
    )
    model: Path = Field(
        Path("models/fashion/fashion_cloud_int8.tflite"),
        description="The cloud model (.tflite with its card beside it).",
    )
    threads: int = Field(1, ge=1, le=64, description="Interpreter threads per worker.")
    share_group: str = Field(
        "reinfer",
        pattern=ID_PATTERN,
        description="MQTT 5 shared-subscription group: workers in one group split the frames.",
    )
    prefetch: int = Field(
        8,
        ge=1,
        le=1000,
        description="Escalations the broker may hand this worker before it acknowledges any "
        "(MQTT receive maximum): small keeps the split even, larger hides round trips.",
    )
    top_k: int = Field(5, ge=1, le=100, description="Predictions kept in each verdict.")
    detection: DetectionSection = Field(
        default_factory=DetectionSection, description="The detector of detection escalations."
    )


class ResubmitSection(Section):
    """Escalations stored without a verdict, sent to the workers again (cloud/resubmit.py)."""

    after_s: float = Field(
        120.0,
        ge=0,
        description="An escalation with no verdict this long after it was stored is published "
        "to the workers again (and again every after_s); 0 turns resubmitting off.",
    )
    interval_s: float = Field(15.0, gt=0, description="Seconds between looks.")
    max_per_pass: int = Field(
        500, ge=1, le=100_000, description="Most escalations published again in one look."
    )


class TrainSection(Section):
    """The learning loop: when a site's edge model is fine-tuned on its verdicts, and when the
    result may ship (``edgecascade cloud trainer`` runs what the triggers queue)."""

    min_new_samples: int = Field(
        0,
        ge=0,
        description="Queue a run once a site has this many new verdicts since its last run; "
        "0 turns this trigger off.",
    )
    max_disagreement: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Queue a run once the share of a site's escalations the cloud disagrees "
        "with over window_s exceeds this (escalated frames only, so biased upwards); 0 turns "
        "this trigger off.",
    )
    min_window_verdicts: int = Field(
        100, ge=1, description="Verdicts over window_s needed before max_disagreement is judged."
    )
    window_s: float = Field(
        3600.0, gt=0, description="The window the disagreement is measured over."
    )
    schedule_s: float = Field(
        0.0,
        ge=0,
        description="Queue a run for a site when its last run is this old; 0 turns it off.",
    )
    check_interval_s: float = Field(
        60.0, gt=0, description="Seconds between the cloud's looks at the triggers."
    )
    max_regression_points: float = Field(
        0.5,
        description="Gate: most points of accuracy the child may lose on the original "
        "evaluation set.",
    )
    min_holdout: int = Field(
        50, ge=0, description="Gate: held-out verdicts of the site needed to judge the child."
    )
    min_improvement_points: float = Field(
        0.0,
        description="Gate: the child must beat its parent on the held-out verdicts by more "
        "than this many points.",
    )
    epochs: int = Field(20, ge=1, le=1000, description="Passes over the site's verdicts.")
    replay_fraction: float = Field(
        0.75,
        ge=0.0,
        lt=1.0,
        description="Share of each training batch from the original training data, so the child "
        "does not forget the scene it was made for.",
    )
    stages: list[float] = Field(
        [10.0, 50.0, 100.0], min_length=1, description="Rollout stages of a shipped child."
    )
    poll_s: float = Field(5.0, gt=0, description="How often an idle trainer looks for runs.")
    heartbeat_s: float = Field(10.0, gt=0, description="How often a running trainer says so.")
    stale_after_s: float = Field(
        120.0,
        gt=0,
        description="A running run whose heartbeat is older than this is failed by the next "
        "trainer to start (its trainer stopped mid-run).",
    )


class BlobSection(Section):
    """Where frames and model files are kept: under data_dir, or in an S3-compatible bucket so
    that several cloud replicas need no shared filesystem. S3 credentials come from boto3's usual
    chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role), never from
    here."""

    backend: Literal["file", "s3"] = Field("file", description="file (under data_dir) or s3.")
    bucket: str = Field(
        "", pattern=r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="S3 bucket name."
    )
    prefix: str = Field(
        "", max_length=256, description="Key prefix in the bucket, e.g. 'edgecascade/'."
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of an S3-compatible store (MinIO, Ceph RGW...); AWS by default.",
    )
    region: str | None = Field(None, description="S3 region; boto3's default chain when unset.")

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> BlobSection:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("blobs.backend s3 needs blobs.bucket")
        return self


class CloudSettings(ComponentSettings):
    """Everything ``edgecascade cloud`` needs."""

    model_config = SettingsConfigDict(env_prefix="EC_CLOUD_")

    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the database, e.g. postgresql+psycopg://user@host/db; "
            "by default a SQLite file in data_dir."
        ),
    )
    data_dir: Path = Field(
        Path("./var/cloud"), description="Directory of the default SQLite file and the blob store."
    )
    http: HttpSection = Field(default_factory=HttpSection, description="The HTTP API.")
    api: ApiSection = Field(default_factory=ApiSection, description="API access.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="The cloud broker.")
    ingest: IngestSection = Field(default_factory=IngestSection, description="MQTT ingest.")
    registry: RegistrySection = Field(
        default_factory=RegistrySection, description="The model registry."
    )
    rollouts: RolloutSection = Field(default_factory=RolloutSection, description="Staged rollouts.")
    fleet: FleetSection = Field(
        default_factory=FleetSection, description="Remote config and device commands."
    )
    retention: RetentionSection = Field(
        default_factory=RetentionSection, description="What is kept how long; the purge."
    )
    blobs: BlobSection = Field(
        default_factory=BlobSection, description="Where frames and model files are kept."
    )
    resubmit: ResubmitSection = Field(
        default_factory=ResubmitSection, description="Escalations without a verdict."
    )
    worker: WorkerSection = Field(
        default_factory=WorkerSection, description="Re-inference workers."
    )
    train: TrainSection = Field(
        default_factory=TrainSection, description="The learning loop (training runs)."
    )
    alerts: AlertsSection = Field(
        default_factory=AlertsSection, description="Alert rules and notification channels."
    )
    camera: CameraSection = Field(default_factory=CameraSection, description="The /camera/ page.")
    client_id: str = Field(
        "cloud-ingest",
        pattern=ID_PATTERN,
        description="MQTT client id of the ingest connection; unique per replica.",
    )

    @property
    def db_url(self) -> str:
        """The database URL in use: ``database_url`` or the SQLite file in ``data_dir``."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'cloud.db'}"

    @property
    def signing_key_path(self) -> Path:
        """The manifest signing key: ``registry.signing_key`` or ``data_dir/keys/...``."""
        return self.registry.signing_key or self.data_dir / "keys" / "manifest-signing.key"

    @property
    def model_dir(self) -> Path:
        """Where registered model files are kept, by sha256: ``data_dir/models``."""
        return self.data_dir / "models"

    @property
    def blob_dir(self) -> Path:
        """Where escalated frames are stored: ``data_dir/blobs``."""
        return self.data_dir / "blobs"
