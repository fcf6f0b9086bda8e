"""The contract in one table: every fact about a message kind, in one typed row.

:data:`KINDS` maps ``(kind, sub-level)`` to a :class:`KindSpec`: the payload model (or, for a
binary kind, the frame-codec header the body follows), the size limit, QoS and retain, the
direction, the outbox class it is queued under, who publishes and who reads it, whether the cloud
stores it, and the line the README's topic table shows. The codec, the agent's and gateway's publish
sites, the outboxes, the cloud's ingest and store, the broker ACL generator and the README (through
``edgecascade topic-reference``) all read it, so a new kind is one row here, its model in
:mod:`shared.messages` and its handler where it is consumed.

Sub-levels: ``model/<sub>`` takes one of :class:`~shared.topics.ModelSub`; ``cmd/<name>`` and
``reply/<name>`` take any valid id, keyed here by :data:`NAME`. :func:`spec_for` is the one lookup
and raises :class:`~shared.errors.ContractError` for a combination the table does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import (
    AckMessage,
    CommandMessage,
    DeadLetterMessage,
    EscalationHeader,
    Message,
    ReplyMessage,
    ResultBatchMessage,
    ResultMessage,
    StateMessage,
    TelemetryMessage,
    TelemetryRollupMessage,
    VerdictMessage,
)
from edgecascade.shared.model_messages import (
    ModelAckMessage,
    ModelChunkHeader,
    ModelChunkRequestMessage,
    ModelOfferMessage,
)
from edgecascade.shared.topics import MODEL_SUBS, Kind, ModelSub, Topic

KIB = 1024
MIB = 1024 * KIB


class FreeName(Enum):
    """The sub-level of ``cmd/<name>`` and ``reply/<name>``: any valid id, the command's name."""

    NAME = "<name>"


NAME = FreeName.NAME
SubLevel = ModelSub | FreeName | None
"""A row's sub-level: a model sub-level, any name (:data:`NAME`), or none."""


class Encoding(StrEnum):
    """How a payload travels."""

    JSON = "json"  # the model as UTF-8 JSON (a result batch may be zlib-compressed)
    FRAME = "frame"  # binary: the frame codec, the model as header, then raw body bytes


class Direction(StrEnum):
    """Which way a kind flows."""

    UP = "up"  # towards the cloud
    DOWN = "down"  # towards the devices


class Role(StrEnum):
    """Who publishes or reads a kind (the broker ACLs are derived from the device's rows)."""

    DEVICE = "device"
    GATEWAY = "gateway"
    CLOUD = "cloud"  # ingest, API, rollout controller, model distributor, resubmitter
    WORKER = "worker"  # re-inference workers


class OutboxClass(StrEnum):
    """The class a message is queued under in a disk outbox (its priority and TTL)."""

    ESCALATION = "escalation"
    VERDICT = "verdict"
    RESULT = "result"
    STATE = "state"
    TELEMETRY = "telemetry"
    MODEL = "model"  # rollout traffic: acks up, offers down
    REPLY = "reply"
    DEAD_LETTER = "deadletter"
    AUDIT = "audit"  # an escalation that is a random audit sample: queued last, dropped first


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One row of the contract: everything about one ``(kind, sub-level)``."""

    kind: Kind
    sub: SubLevel
    model: type[Message]  # the payload model; for Encoding.FRAME the header model
    encoding: Encoding
    limit: int  # bytes on the wire (a compressed batch: also once inflated)
    qos: int
    retain: bool
    direction: Direction
    outbox: OutboxClass | None  # None: published directly, never queued on disk
    publishers: frozenset[Role]
    readers: frozenset[Role]
    stored: bool  # the cloud's ingest stores it
    description: str

    @property
    def level(self) -> str | None:
        """The fixed sub-level (``offer``), or None (no sub-level, or any name: ``+``)."""
        return self.sub.value if isinstance(self.sub, ModelSub) else None

    @property
    def queue_class(self) -> OutboxClass:
        """The outbox class; :class:`ContractError` for a kind that is never queued."""
        if self.outbox is None:
            raise ContractError(f"{self.pattern} messages are published directly, never queued")
        return self.outbox

    @property
    def pattern(self) -> str:
        """The topic's tail as the README writes it: ``state``, ``model/offer``, ``cmd/<name>``."""
        return self.kind.value if self.sub is None else f"{self.kind.value}/{self.sub.value}"


def _row(
    kind: Kind,
    sub: SubLevel,
    model: type[Message],
    limit: int,
    *,
    direction: Direction,
    publishers: set[Role],
    readers: set[Role],
    outbox: OutboxClass | None,
    description: str,
    encoding: Encoding = Encoding.JSON,
    qos: int = 1,
    retain: bool = False,
    stored: bool = False,
) -> tuple[tuple[Kind, SubLevel], KindSpec]:
    spec = KindSpec(
        kind,
        sub,
        model,
        encoding,
        limit,
        qos,
        retain,
        direction,
        outbox,
        frozenset(publishers),
        frozenset(readers),
        stored,
        description,
    )
    return (kind, sub), spec


UP, DOWN = Direction.UP, Direction.DOWN
DEVICE, GATEWAY, CLOUD, WORKER = Role.DEVICE, Role.GATEWAY, Role.CLOUD, Role.WORKER

KINDS: dict[tuple[Kind, SubLevel], KindSpec] = dict(
    [
        _row(
            Kind.STATE,
            None,
            StateMessage,
            16 * KIB,
            retain=True,
            direction=UP,
            publishers={DEVICE, GATEWAY},
            readers={GATEWAY, CLOUD, DEVICE},  # a device reads its gateway's
            outbox=OutboxClass.STATE,
            stored=True,
            description="online/offline, session epoch, model, capabilities; the LWT publishes "
            "offline; devices publish only while their gateway's says online",
        ),
        _row(
            Kind.RESULT,
            None,
            ResultMessage,
            16 * KIB,
            direction=UP,
            publishers={DEVICE},
            readers={GATEWAY, CLOUD},
            outbox=OutboxClass.RESULT,
            stored=True,
            description="one inference result: top-k, per-stage latency, escalated flag",
        ),
        _row(
            Kind.RESULT_BATCH,
            None,
            ResultBatchMessage,
            16 * MIB,
            direction=UP,
            publishers={GATEWAY},
            readers={CLOUD},
            outbox=OutboxClass.RESULT,  # the gateway batches its queued results as it sends
            stored=True,
            description="a window of the site's results, each with its device; may be "
            "zlib-compressed",
        ),
        _row(
            Kind.ESCALATION,
            None,
            EscalationHeader,
            4 * MIB,
            encoding=Encoding.FRAME,
            direction=UP,
            publishers={DEVICE, CLOUD},  # the cloud resubmits those left without a verdict
            readers={GATEWAY, CLOUD, WORKER},
            outbox=OutboxClass.ESCALATION,
            stored=True,
            description="an unsure frame (JPEG or PNG bytes) and the edge result, for the "
            "re-inference workers; or a random audit sample of a sure one (header audit: "
            "queued under the lowest outbox class, audit)",
        ),
        _row(
            Kind.TELEMETRY,
            None,
            TelemetryMessage,
            64 * KIB,
            qos=0,
            direction=UP,
            publishers={DEVICE, GATEWAY},
            readers={GATEWAY, CLOUD},
            outbox=OutboxClass.TELEMETRY,
            stored=True,
            description="CPU, memory, temperature, fps, latency percentiles, queues, counters",
        ),
        _row(
            Kind.TELEMETRY_ROLLUP,
            None,
            TelemetryRollupMessage,
            256 * KIB,
            direction=UP,
            publishers={GATEWAY},
            readers={CLOUD},
            outbox=OutboxClass.TELEMETRY,
            stored=True,
            description="one device's telemetry over a window, min/mean/max/last per field",
        ),
        _row(
            Kind.DEAD_LETTER,
            None,
            DeadLetterMessage,
            16 * KIB,
            direction=UP,
            publishers={GATEWAY},
            readers=set(),  # for operators: nothing in the project consumes them
            outbox=OutboxClass.DEAD_LETTER,
            description="what failed validation or a device's rate limit: its topic, the "
            "reason, the first 64 bytes",
        ),
        _row(
            Kind.ACK,
            None,
            AckMessage,
            64 * KIB,
            direction=DOWN,
            publishers={GATEWAY, CLOUD},
            readers={DEVICE, GATEWAY},
            outbox=None,  # published as the commit happens; a lost one costs a re-send
            description="the next hop has committed these message ids: the sender forgets them "
            "(a device's results and escalations; the gateway's to the cloud)",
        ),
        _row(
            Kind.VERDICT,
            None,
            VerdictMessage,
            16 * KIB,
            direction=DOWN,
            publishers={WORKER},
            readers={GATEWAY, DEVICE},
            outbox=OutboxClass.VERDICT,
            description="the cloud model's top-k on an escalated frame and whether the edge agreed",
        ),
        _row(
            Kind.MODEL,
            ModelSub.OFFER,
            ModelOfferMessage,
            4 * MIB,
            direction=DOWN,
            publishers={CLOUD},
            readers={GATEWAY, DEVICE},
            outbox=OutboxClass.MODEL,
            description="install this model: a signed manifest, from the rollout controller",
        ),
        _row(
            Kind.MODEL,
            ModelSub.REQUEST,
            ModelChunkRequestMessage,
            64 * KIB,
            direction=UP,
            publishers={DEVICE, GATEWAY},
            readers={GATEWAY, CLOUD},
            outbox=None,  # a requester that hears nothing asks again
            description="send me these chunks of this sha256 (resuming asks for the missing ones)",
        ),
        _row(
            Kind.MODEL,
            ModelSub.CHUNK,
            ModelChunkHeader,
            1 * MIB + 64 * KIB,
            encoding=Encoding.FRAME,
            direction=DOWN,
            publishers={CLOUD, GATEWAY},
            readers={GATEWAY, DEVICE},
            outbox=None,  # answered from the registry or the gateway's cache, not queued
            description="one chunk of a model file, from the distributor or the gateway's cache",
        ),
        _row(
            Kind.MODEL,
            ModelSub.ACK,
            ModelAckMessage,
            16 * KIB,
            direction=UP,
            publishers={DEVICE},
            readers={GATEWAY, CLOUD},
            outbox=OutboxClass.MODEL,
            stored=True,
            description="how applying a model goes: downloading, verified, applied, committed, "
            "rolled back or failed; the cloud stores them for the rollout",
        ),
        _row(
            Kind.CMD,
            NAME,
            CommandMessage,
            256 * KIB,
            direction=DOWN,
            publishers={CLOUD},
            readers={GATEWAY, DEVICE},
            outbox=None,
            description="a request with a correlation id; never retained",
        ),
        _row(
            Kind.REPLY,
            NAME,
            ReplyMessage,
            4 * MIB,
            direction=UP,
            publishers={GATEWAY, DEVICE},
            readers={CLOUD},
            outbox=OutboxClass.REPLY,
            description="the answer to a command: status, data, error, the same correlation",
        ),
    ]
)


def spec_of(kind: Kind, sub: str | FreeName | None = None) -> KindSpec:
    """The row of ``kind`` with sub-level ``sub`` (a name, or :data:`NAME` for any);
    :class:`ContractError` if the contract has none."""
    keys: list[tuple[Kind, SubLevel]] = []
    if sub is None or isinstance(sub, FreeName):
        keys.append((kind, sub))
    else:
        if sub in MODEL_SUBS:
            keys.append((kind, ModelSub(sub)))
        keys.append((kind, NAME))
    for key in keys:
        if key in KINDS:
            return KINDS[key]
    level = sub.value if isinstance(sub, FreeName) else sub
    where = kind.value if level is None else f"{kind.value}/{level}"
    raise ContractError(f"the contract has no {where!r} messages")


def spec_for(topic: Topic) -> KindSpec:
    """The row of a parsed topic; :class:`ContractError` if the contract has none."""
    return spec_of(topic.kind, topic.sub)


def queue_class_of(spec: KindSpec, message: Message) -> OutboxClass:
    """The outbox class one message is queued under: its row's, except that an escalation that
    is an audit sample goes under :attr:`OutboxClass.AUDIT`, the lowest priority."""
    if isinstance(message, EscalationHeader) and message.audit:
        return OutboxClass.AUDIT
    return spec.queue_class


def stored_specs() -> list[KindSpec]:
    """The rows the cloud's ingest subscribes to and stores."""
    return [spec for spec in KINDS.values() if spec.stored]
