"""Group commit for the gateway's intake.

Every message from the site broker is acknowledged only after what it carries is committed to
the uplink outbox. Committing each message in its own transaction costs one disk write per
message; here the network thread hands each message to an intake thread, which commits
whatever arrived meanwhile in one transaction (:meth:`shared.outbox.Outbox.put_many`) and then
acknowledges the group in arrival order (MQTT wants PUBACKs in the order the PUBLISHes came).
The queue between them is bounded: when it is full the network thread waits, the broker stops
sending (its in-flight window fills) and the backlog stays in the broker, not in our memory.
The queue, the thread and the acknowledgements are :class:`shared.consumer.CommitConsumer`'s.
The exception is a message the gateway refuses (over its device's rate limit, not the first of its
interval): :meth:`Intake.refuse` acknowledges it at once, out of turn, without queueing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgecascade.shared.consumer import Ack, AckLink, CommitConsumer
from edgecascade.shared.mqtt import Outgoing, Received
from edgecascade.shared.outbox import Outbox, PutOutcome

Entry = tuple[str, Outgoing, str | None]  # (outbox class, message, msg_id)
OutcomeHandler = Callable[[PutOutcome], None]


@dataclass(frozen=True, slots=True)
class Pending:
    """A received message; ``entry`` is what to commit for it (None: only acknowledge it)."""

    message: Received
    entry: Entry | None = None
    on_outcome: OutcomeHandler | None = None


@dataclass(frozen=True, slots=True)
class _Put:
    entry: Entry
    on_outcome: OutcomeHandler | None


class Intake:
    """Commits what the site broker delivers to the outbox in groups, then acknowledges it;
    :meth:`start`, :meth:`submit` (network thread), :meth:`stop`."""

    def __init__(
        self,
        outbox: Outbox,
        link: AckLink,
        *,
        max_pending: int = 2000,
        max_group: int = 500,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        """``after_commit`` runs after each group is on disk (the gateway confirms to the
        devices what it now keeps)."""
        self.outbox = outbox
        self._after_commit = after_commit
        self.max_pending = max_pending
        self.max_group = max_group
        # An outbox that cannot commit leaves the group unacknowledged (counted in ``errors``):
        # the broker delivers it again (the session is persistent).
        self._consumer: CommitConsumer[_Put, _Put] = CommitConsumer(
            "intake",
            link,
            self._commit,
            _as_is,
            max_queued=max_pending,
            max_batch=max_group,
        )

    @property
    def groups(self) -> int:
        """Groups committed."""
        return self._consumer.groups

    @property
    def errors(self) -> int:
        """Groups the outbox could not commit (left unacknowledged)."""
        return self._consumer.errors

    def start(self) -> None:
        self._consumer.start()

    def submit(self, pending: Pending) -> None:
        """Queue a message (the network thread); waits while the queue is full. After
        :meth:`stop` it is left unacknowledged: the broker delivers it to the next session."""
        put = None if pending.entry is None else _Put(pending.entry, pending.on_outcome)
        self._consumer.submit(pending.message, put)

    def refuse(self, message: Received) -> None:
        """Acknowledge a refused message at once, out of turn (the network thread): a flooding
        device's excess must not wait behind, nor hold up, its neighbours' commits."""
        self._consumer.refuse(message)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what is queued, then stop."""
        self._consumer.stop(timeout)

    def _commit(self, group: list[_Put]) -> Ack:
        outcomes = self.outbox.put_many([put.entry for put in group])
        for put, outcome in zip(group, outcomes, strict=True):
            if put.on_outcome is not None:
                put.on_outcome(outcome)
        if self._after_commit is not None:
            self._after_commit()
        return Ack.ALL


def _as_is(put: _Put) -> _Put:
    return put
