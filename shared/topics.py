"""The topic grammar: ``<prefix>/v1/<site>/<device>/<kind>[/<sub>]``.

Every topic in the project is built and parsed here; nothing else formats topic strings.
Ids (prefix, site, device, sub) are single MQTT levels: non-empty, no ``/``, ``+``, ``#``, no NUL,
at most 64 characters of ``[A-Za-z0-9._-]``, never ``.`` or ``..``, so they are also safe as MQTT
client ids and file names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from edgecascade.shared.errors import ContractError

VERSION = "v1"
DEFAULT_PREFIX = "ec"
ID_PATTERN = (
    r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}"
    r"|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}"
    r"|\.\.[A-Za-z0-9._-]{1,62})$"
)
"""Every id (site, device, model, rollout, token): one safe topic level, never ``.`` or ``..``
(written without look-arounds so pydantic's regex engine takes it)."""
_ID_RE = re.compile(ID_PATTERN)


class Kind(StrEnum):
    """The message kinds (docs/ARCHITECTURE.md); the value is the topic level. Each row of
    :data:`shared.contract.KINDS` says what one kind (and sub-level) carries."""

    STATE = "state"
    RESULT = "result"
    RESULT_BATCH = "results"
    ESCALATION = "escalation"
    TELEMETRY = "telemetry"
    TELEMETRY_ROLLUP = "rollup"
    VERDICT = "verdict"
    MODEL = "model"
    CMD = "cmd"
    REPLY = "reply"
    DEAD_LETTER = "deadletter"
    ACK = "ack"


class ModelSub(StrEnum):
    """The sub-levels of ``model/<sub>``: the rollout flow, one message type each."""

    OFFER = "offer"
    REQUEST = "request"
    CHUNK = "chunk"
    ACK = "ack"


# Kinds that need a sub-level (model/offer, cmd/<name>, ...) and those that must not have one.
# What each (kind, sub) carries is the contract table's business (shared/contract.py).
_NEEDS_SUB = frozenset({Kind.MODEL, Kind.CMD, Kind.REPLY})
MODEL_SUBS = frozenset(ModelSub)


def validate_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid topic level, else raise naming ``what``."""
    if not _ID_RE.fullmatch(value) or value in (".", ".."):
        raise ContractError(
            f"invalid {what} {value!r}: use 1-64 characters of letters, digits, '.', '_' or '-'"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """One parsed topic. ``str(topic)`` gives the wire form."""

    site: str
    device: str
    kind: Kind
    sub: str | None = None
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        validate_id(self.prefix, "topic prefix")
        validate_id(self.site, "site id")
        validate_id(self.device, "device id")
        if self.kind in _NEEDS_SUB:
            if self.sub is None:
                raise ContractError(f"topic kind {self.kind.value!r} needs a sub-level")
            validate_id(self.sub, f"{self.kind.value} name")
            if self.kind is Kind.MODEL and self.sub not in MODEL_SUBS:
                raise ContractError(f"unknown model topic {self.sub!r}")
        elif self.sub is not None:
            raise ContractError(f"topic kind {self.kind.value!r} takes no sub-level")

    def __str__(self) -> str:
        parts = [self.prefix, VERSION, self.site, self.device, self.kind.value]
        if self.sub is not None:
            parts.append(self.sub)
        return "/".join(parts)

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a wire topic; raises :class:`ContractError` naming what is wrong."""
        parts = topic.split("/")
        if len(parts) not in (5, 6):
            raise ContractError(f"topic {topic!r} does not have 5 or 6 levels")
        prefix, version, site, device, kind_text, *rest = parts
        if version != VERSION:
            raise ContractError(f"topic {topic!r} has version {version!r}, expected {VERSION!r}")
        try:
            kind = Kind(kind_text)
        except ValueError:
            raise ContractError(f"topic {topic!r} has unknown kind {kind_text!r}") from None
        return cls(site, device, kind, rest[0] if rest else None, prefix)


def topic(
    site: str, device: str, kind: Kind, sub: str | None = None, prefix: str = DEFAULT_PREFIX
) -> str:
    """The wire topic for one message."""
    return str(Topic(site, device, kind, sub, prefix))


def topic_filter(
    kind: Kind,
    site: str | None = None,
    device: str | None = None,
    sub: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> str:
    """A subscription filter; ``None`` for site, device or sub matches any (``+``)."""
    validate_id(prefix, "topic prefix")
    levels = [prefix, VERSION]
    for value, what in ((site, "site id"), (device, "device id")):
        levels.append("+" if value is None else validate_id(value, what))
    levels.append(kind.value)
    if kind in _NEEDS_SUB:
        levels.append("+" if sub is None else validate_id(sub, f"{kind.value} name"))
    return "/".join(levels)


def shared_filter(group: str, topic_filter_: str) -> str:
    """An MQTT 5 shared subscription: the broker hands each message to one group member."""
    return f"$share/{validate_id(group, 'share group')}/{topic_filter_}"
