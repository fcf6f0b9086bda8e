"""The durable outbox: an on-disk priority queue in SQLite (WAL) used by the agent and the gateway.

A message is *accepted* once :meth:`Outbox.put` returns: it is committed to disk and survives a
SIGKILL of the process and, with ``synchronous="full"`` (the default), a power cut
(:mod:`shared.outbox.disk`). On a full disk ``put`` drops the message and counts it
(``dropped.disk_full.<class>``) instead of raising; ``put_many`` raises :class:`DiskFullError`.
:class:`OutboxSender` publishes rows in priority order (lower number first; within one class in
the order they were put) and deletes a row only after the broker's PUBACK, so a crash between
publish and delete sends the row again: at-least-once, de-duplicated downstream by ``msg_id``.
Rows past their class's TTL expire; when the disk quota is full the lowest-priority,
oldest rows make room. Every expiry and drop is counted in the ``counters`` table, never silent.

A broker acknowledges a message before it is on its disk (Mosquitto saves every
``autosave_interval``), so a SIGKILLed broker can lose what it acknowledged last. With
``replay_window_s`` > 0 an acknowledged row is kept that long, marked sent, and after every new
connection the sender publishes the rows sent within the window again (counted as
``replayed.<class>``); the receivers de-duplicate them by ``msg_id``. Set the window above the
broker's autosave interval; the agent's and the gateway's ``outbox_replay_s`` default to
:data:`DEFAULT_REPLAY_S` (90 s, above the shipped brokers' 60 s). The chaos suite
(``tests/chaos``) found the loss this closes.
"""

from edgecascade.shared.outbox.classes import (
    CONFIRMED_CLASSES,
    DEFAULT_CLASSES,
    DEFAULT_CONFIRM_S,
    DEFAULT_REPLAY_S,
    ClassPolicy,
    Coalesce,
    ConfirmSeconds,
    PutOutcome,
    ReplaySeconds,
    Row,
    one_by_one,
)
from edgecascade.shared.outbox.disk import DEFAULT_SYNC, OutboxSync, Synchronous
from edgecascade.shared.outbox.sender import OutboxSender
from edgecascade.shared.outbox.store import Outbox

__all__ = [
    "CONFIRMED_CLASSES",
    "DEFAULT_CLASSES",
    "DEFAULT_CONFIRM_S",
    "DEFAULT_REPLAY_S",
    "DEFAULT_SYNC",
    "ClassPolicy",
    "Coalesce",
    "ConfirmSeconds",
    "Outbox",
    "OutboxSender",
    "OutboxSync",
    "PutOutcome",
    "ReplaySeconds",
    "Row",
    "Synchronous",
    "one_by_one",
]
