"""What the outbox queues: the classes of message and their policies, the rows, the settings
every component with an outbox shares (``outbox_replay_s``, ``outbox_confirm_s``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from edgecascade.shared.config import Section
from edgecascade.shared.contract import OutboxClass
from edgecascade.shared.mqtt import Outgoing


class ClassPolicy(Section):
    """How one class of message is queued."""

    priority: int = 1
    ttl_s: float = 86_400.0


# Keyed by the contract's outbox classes (each row of shared.contract.KINDS names its class).
DEFAULT_CLASSES: dict[str, ClassPolicy] = {
    OutboxClass.ESCALATION: ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    OutboxClass.VERDICT: ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    OutboxClass.RESULT: ClassPolicy(priority=1, ttl_s=7 * 86_400.0),
    OutboxClass.STATE: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.MODEL: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.REPLY: ClassPolicy(priority=1, ttl_s=86_400.0),
    OutboxClass.TELEMETRY: ClassPolicy(priority=2, ttl_s=3600.0),
    # Random audit samples of sure frames: after everything else, the first dropped when full.
    OutboxClass.AUDIT: ClassPolicy(priority=3, ttl_s=6 * 3600.0),
}


PutOutcome = Literal["queued", "duplicate", "dropped"]

DEFAULT_REPLAY_S = 90.0
"""The default ``outbox_replay_s``: above the 60 s ``autosave_interval`` of the shipped brokers
(``deploy/mosquitto``, ``deploy/docker``), so a component started from flags alone loses nothing
when its broker is SIGKILLed (``tests/deploy/test_deploy_files.py`` keeps the two in step)."""

ReplaySeconds = Annotated[
    float,
    Field(
        ge=0,
        description="Keep acknowledged outbox rows this long and publish them again after "
        "every reconnect: a broker killed before it saved them (Mosquitto's autosave_interval) "
        "then loses nothing; receivers drop the copies by message id. Keep it above the "
        "broker's autosave_interval (the default is above the shipped brokers' 60 s). 0 deletes "
        "a row at its PUBACK: a SIGKILLed broker then loses what it had not saved.",
    ),
]
"""The ``outbox_replay_s`` setting of every component with an outbox."""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    klass: str
    message: Outgoing
    created: float = 0.0


# Groups rows into the messages that carry them: each (message, rows) pair is published once and
# its rows are deleted when the broker acknowledges it. The default sends each row as it is.
Coalesce = Callable[[list[Row]], list[tuple[Outgoing, list[Row]]]]


def one_by_one(rows: list[Row]) -> list[tuple[Outgoing, list[Row]]]:
    return [(row.message, [row]) for row in rows]


CONFIRMED_CLASSES = frozenset({OutboxClass.RESULT, OutboxClass.ESCALATION, OutboxClass.AUDIT})
"""The classes the next hop confirms (``ack``): a device's results and escalations with their audit
samples at the gateway, the gateway's at the cloud."""

DEFAULT_CONFIRM_S = 30.0

ConfirmSeconds = Annotated[
    float,
    Field(
        ge=0,
        description="Keep results and escalations after the broker's PUBACK until the next hop "
        "(gateway, cloud) confirms it has committed them (an ack message), and send them again "
        "when no confirmation came this long after sending, and after every reconnect: a broker "
        "that drops a session or its queue (an outage longer than the session expiry, a restart "
        "without persistence) then costs a re-send, never a loss; receivers drop the copies by "
        "message id. 0: forget them at the PUBACK (and the replay window).",
    ),
]
"""The ``outbox_confirm_s`` setting of the agent and the gateway."""
