"""One conformance run: start the site, launch (or wait for) the agent, run the checks in order,
stop everything. :func:`run_conformance` is the Python API; ``edgecascade conformance run`` calls
it."""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgecascade.conformance.agent import AgentInputs, LaunchedAgent, agent_environment
from edgecascade.conformance.checks_downlink import (
    check_commands,
    check_dead_letter,
    check_lwt,
    check_verdicts,
    check_websockets,
)
from edgecascade.conformance.checks_offers import check_offers
from edgecascade.conformance.checks_uplink import (
    check_acks,
    check_escalations,
    check_results,
    check_state,
)
from edgecascade.conformance.cloud import CloudSide, Distributor, IngestConfirmations
from edgecascade.conformance.context import Run, Timeouts
from edgecascade.conformance.defaults import (
    DEFAULT_FRAMES,
    DEFAULT_MODEL,
    DEFAULT_OFFER_MODEL,
)
from edgecascade.conformance.recorder import Recorder
from edgecascade.conformance.report import Check, Report, Status, failed, skipped
from edgecascade.conformance.site import OBSERVER, Site, SiteIds
from edgecascade.deploy.mosquitto import site_filter
from edgecascade.shared.errors import BrokerError, ConfigError
from edgecascade.shared.messages import StateMessage
from edgecascade.shared.topics import Kind

logger = logging.getLogger(__name__)

CheckFn = Callable[[Run], list[Check]]
GROUPS: dict[str, CheckFn] = {
    "state": check_state,
    "results": check_results,
    "escalations": check_escalations,
    "verdicts": check_verdicts,
    "commands": check_commands,
    "offers": check_offers,
    "acks": check_acks,
    "websockets": check_websockets,
    "lwt": check_lwt,
    "dead_letter": check_dead_letter,
}


@dataclass
class Options:
    """A run. ``agent_cmd`` None with ``launch`` False: wait for an agent started by hand."""

    agent_cmd: str | None
    launch: bool = True
    model: Path = DEFAULT_MODEL
    offer_model: Path = DEFAULT_OFFER_MODEL
    frames: Path = DEFAULT_FRAMES
    groups: Sequence[str] = tuple(GROUPS)
    timeouts: Timeouts = field(default_factory=Timeouts)
    ids: SiteIds = field(default_factory=SiteIds)
    bind: str = "127.0.0.1"
    advertise: str | None = None  # the host the agent is told (default: where the suite binds)
    workdir: Path | None = None  # kept when given; a temporary one is removed
    say: Callable[[str], None] = print

    def check(self) -> None:
        unknown = sorted(set(self.groups) - set(GROUPS))
        if unknown:
            raise ConfigError(f"unknown check(s) {unknown}; known: {list(GROUPS)}")
        if self.advertise and self.bind not in ("0.0.0.0", "::", self.advertise):
            raise ConfigError(
                f"advertise {self.advertise!r}: the site broker listens on {self.bind} only; "
                "give --bind 0.0.0.0 (or that address) for an agent on another machine"
            )
        if self.launch and not self.agent_cmd:
            raise ConfigError("give --agent-cmd, or --no-launch to test an agent started by hand")
        for what, path in (
            ("model", self.model),
            ("offer model", self.offer_model),
            ("frames", self.frames),
        ):
            if not path.exists():
                raise ConfigError(f"{what} {path} does not exist")
        if "offers" in self.groups and _digest(self.model) == _digest(self.offer_model):
            raise ConfigError(
                f"offer model {self.offer_model} is the model the agent starts with: the valid "
                "offer must install another model the agent can run (--offer-model)"
            )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_conformance(options: Options) -> Report:
    options.check()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="ec-conformance-"))
    try:
        return _run(options, workdir)
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(options: Options, workdir: Path) -> Report:
    ids = options.ids
    site = Site(workdir, ids, options.bind, options.advertise)
    site_rec = Recorder(site.site_settings(OBSERVER), OBSERVER, site_filter(ids.site, ids.prefix))
    cloud_rec = Recorder(
        site.cloud_settings,
        "conformance-cloud",
        site_filter(ids.site, ids.prefix),
        then=IngestConfirmations(lambda wire: cloud_rec.link.publish(wire)),
    )
    distributor = Distributor(site.cloud_settings)
    agent: LaunchedAgent | None = None
    try:
        site.start()
        site_rec.start()
        cloud_rec.start()
        distributor.start()
        _wait_gateway(site, site_rec, options.timeouts.connect)
        inputs = AgentInputs(options.model, options.frames)
        env = agent_environment(site, inputs, workdir / "agent-data")
        (workdir / "agent-data").mkdir(exist_ok=True)
        if options.launch:
            assert options.agent_cmd is not None
            agent = LaunchedAgent(options.agent_cmd, env, workdir / "logs" / "agent.log")
        else:
            options.say("start the agent with these settings:")
            options.say(
                "\n".join(
                    f"export {k}={shlex.quote(v)}" for k, v in env.items() if not k.endswith("_PEM")
                )
            )
        run = Run(
            site,
            site_rec,
            cloud_rec,
            CloudSide(ids),
            distributor,
            options.offer_model,
            options.model,
            agent,
            options.timeouts,
            inputs.confirm_s,
        )
        return _checks(run, options.groups)
    finally:
        if agent is not None:
            agent.stop()
        distributor.stop()
        cloud_rec.stop()
        site_rec.stop()
        site.stop()


def _wait_gateway(site: Site, site_rec: Recorder, timeout: float) -> None:
    ids = site.ids

    def online() -> bool | None:
        site.gateway_alive()
        for seen in site_rec.seen(lambda s: s.is_(Kind.STATE, ids.gateway)):
            message = seen.decoded().message
            if isinstance(message, StateMessage) and message.status == "online":
                return True
        return None

    if not site_rec.wait(online, timeout):
        raise BrokerError(
            f"the gateway was not online within {timeout:g} s:\n{site.group.log_tail('gateway')}"
        )


def _checks(run: Run, groups: Sequence[str]) -> Report:
    report = Report()
    for name, check in GROUPS.items():
        if name not in groups and name != "state":  # the others wait for the agent's state
            continue
        if name != "state" and report.status_of("state.online") is Status.FAIL:
            report.checks.append(skipped(name, "the agent never came online"))
            continue
        started = time.monotonic()
        try:
            report.checks += check(run)
        except Exception as exc:  # a check that breaks is a failed check, with the reason
            logger.exception("check %s raised", name)
            report.checks.append(failed(name, f"the check raised {type(exc).__name__}: {exc}"))
        logger.info("checks %s took %.1f s", name, time.monotonic() - started)
        if name == "state" and report.status_of("state.online") is Status.FAIL and run.agent:
            tail = run.agent.log_tail()
            exited = "" if run.agent.running else f" (exited with {run.agent.proc.returncode})"
            report.checks.append(failed("agent.log", f"agent log{exited}: {tail[-1500:]}"))
    return report
