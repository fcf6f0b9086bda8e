"""Commands from the cloud to the agent (``cmd/<name>``, relayed by the site gateway), each
answered on ``reply/<name>`` with the command's correlation id through the disk outbox.

* ``config``: ``{"version": n, "settings": {...}}``, the live settings (:mod:`edge_agent.live`).
  Refused with the reason (the previous settings keep running) or applied between two frames;
  the reply and the retained state then carry the version in force.
* ``diagnostics``: ``{"lines": n}``, the last log lines, the settings in force (secrets hidden)
  and the outbox summary (:mod:`shared.diagnostics`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from edgecascade.edge_agent.live import LiveSettings
from edgecascade.edge_agent.policy import EscalationPolicy
from edgecascade.shared.codec import encode
from edgecascade.shared.contract import NAME, spec_of
from edgecascade.shared.diagnostics import (
    effective_settings,
    install_log_ring,
    lines_asked,
    outbox_summary,
)
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.messages import CommandMessage, ReplyMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.outbox import Outbox
from edgecascade.shared.topics import Kind

logger = logging.getLogger(__name__)

REPLY = spec_of(Kind.REPLY, NAME)
ERROR_LIMIT = 1024  # characters of a refusal's reason (the reply's error field)


class AgentCommands:
    """Answers the agent's commands; ``applied`` is called after a new config is in force."""

    def __init__(
        self,
        config: LiveSettings,
        outbox: Outbox,
        topic: Callable[[Kind, str], str],
        labels: Callable[[], Sequence[str]],
        applied: Callable[[], None],
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.topic = topic
        self.labels = labels
        self.applied = applied
        self.ring = install_log_ring()
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "config": self._config,
            "diagnostics": self._diagnostics,
        }

    def handle(self, name: str, command: CommandMessage) -> ReplyMessage:
        """Run one command and queue its reply; never raises for a bad command."""
        handler = self.handlers.get(name)
        try:
            if handler is None:
                raise ConfigError(f"unknown command {name!r}; known: {sorted(self.handlers)}")
            data = json.loads(json.dumps(handler(dict(command.args))))
            reply = ReplyMessage(correlation=command.correlation, status="ok", data=data)
        except (ConfigError, ValueError) as exc:
            logger.warning("command %s refused: %s", name, exc)
            reply = ReplyMessage(
                correlation=command.correlation,
                status="error",
                error=str(exc)[:ERROR_LIMIT],
                data={"version": self.config.version},
            )
        wire = Outgoing(self.topic(Kind.REPLY, name), encode(reply), qos=REPLY.qos)
        self.outbox.put(REPLY.queue_class, wire, reply.msg_id)
        return reply

    def _config(self, args: dict[str, Any]) -> dict[str, Any]:
        version, document = args.get("version"), args.get("settings")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"config needs an integer version, got {version!r}")
        if not isinstance(document, dict):
            raise ConfigError(f"config needs settings as a table of keys, got {document!r}")
        if version == self.config.version:  # a resend of what runs: nothing to change
            return {"version": version, "changed": False}
        candidate = self.config.check(version, document)
        # The model's labels are known here, not to the settings schema: a class threshold
        # for a label the model lacks is refused before anything changes.
        EscalationPolicy(candidate.settings.escalation, tuple(self.labels()))
        self.config.apply(candidate)
        self.applied()
        return {"version": version, "changed": True}

    def _diagnostics(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "logs": self.ring.tail(lines_asked(args)),
            "settings": effective_settings(self.config.current),
            "config_version": self.config.version,
            "outbox": outbox_summary(self.outbox),
        }
