"""What every check works with: the site, what each broker carried, the agent, the options."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecascade.conformance.agent import LaunchedAgent
from edgecascade.conformance.cloud import CloudSide, Distributor
from edgecascade.conformance.recorder import Recorder, Seen
from edgecascade.conformance.site import Site
from edgecascade.shared.errors import ContractError
from edgecascade.shared.messages import StateMessage, TelemetryMessage, TelemetryRollupMessage
from edgecascade.shared.topics import Kind


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each wait may take, seconds."""

    connect: float = 30.0  # the agent's first online state
    event: float = 20.0  # a result, an escalation, a reply, an ack
    offer: float = 30.0  # a valid offer applied
    refusal: float = 10.0  # a bad offer's failed ack (else: checked not installed)
    lwt: float = 10.0  # the offline state after SIGKILL


@dataclass
class Run:
    site: Site
    site_rec: Recorder  # the site broker: everything of the site (read-only user)
    cloud_rec: Recorder  # the cloud broker: everything of the site; the suite publishes here
    cloud: CloudSide
    distributor: Distributor
    offer_model: Path
    start_model: Path
    agent: LaunchedAgent | None
    timeouts: Timeouts = field(default_factory=Timeouts)
    confirm_s: float = 3.0  # EC_CONFORMANCE_CONFIRM_S: the agent re-sends unacknowledged ones
    started_at: float = field(default_factory=time.time)

    @property
    def device(self) -> str:
        return self.site.ids.device

    def states(self, since: float = 0.0) -> list[tuple[Seen, StateMessage | None, str]]:
        """The device's states on the site broker: each with its message (None: invalid) and
        the validation error."""
        out: list[tuple[Seen, StateMessage | None, str]] = []
        for seen in self.site_rec.seen(lambda s: s.is_(Kind.STATE, self.device), since):
            try:
                message = seen.decoded().message
            except ContractError as exc:  # the agent's fault, reported
                out.append((seen, None, str(exc)))
                continue
            out.append((seen, message if isinstance(message, StateMessage) else None, ""))
        return out

    def telemetry(self, since: float = 0.0) -> list[TelemetryMessage]:
        """The device's telemetry as it reached the cloud (samples, or the last of rollups)."""
        out: list[TelemetryMessage] = []
        kinds = (Kind.TELEMETRY, Kind.TELEMETRY_ROLLUP)
        for seen in self.cloud_rec.seen(lambda s: any(s.is_(k, self.device) for k in kinds), since):
            try:
                message = seen.decoded().message
            except ContractError:  # the gateway forwards only valid ones
                continue
            if isinstance(message, TelemetryRollupMessage):
                out.append(message.last)
            elif isinstance(message, TelemetryMessage):
                out.append(message)
        return out
