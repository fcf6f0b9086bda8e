"""The agent under test: launched from a shell command with its settings in the environment.

The command runs under ``/bin/sh -c`` in a session of its own, so ``$EC_CONFORMANCE_*`` expand in
it and the suite can SIGKILL the whole process group (a launcher script and the browser or runtime
it starts) for the LWT check. Its output goes to ``<workdir>/logs/agent.log``. With ``--no-launch``
the suite prints the same settings and waits for an agent started by hand; the checks that need
to kill it are skipped.

The variables (:func:`agent_environment`):

=====================================  ========================================================
``EC_CONFORMANCE_BROKER_HOST``         site broker host (MQTT over TCP, no TLS)
``EC_CONFORMANCE_BROKER_PORT``         site broker TCP port
``EC_CONFORMANCE_WS_URL``              the same broker over websockets, ``ws://host:port/``
``EC_CONFORMANCE_SITE``                site id (topics ``<prefix>/v1/<site>/<device>/...``)
``EC_CONFORMANCE_DEVICE``              device id
``EC_CONFORMANCE_GATEWAY``             the site gateway's id (its retained ``state`` topic)
``EC_CONFORMANCE_PREFIX``              topic prefix
``EC_CONFORMANCE_USERNAME``            the device's broker user (``<site>/<device>``; also the
                                       client id the broker assigns)
``EC_CONFORMANCE_PASSWORD``            its password
``EC_CONFORMANCE_MODEL``               the ``.tflite`` model to start with (its card beside it)
``EC_CONFORMANCE_MODEL_PUBLIC_KEY``    PEM file of the ed25519 key that signs model offers
``EC_CONFORMANCE_MODEL_PUBLIC_KEY_PEM`` the same key, as PEM text
``EC_CONFORMANCE_FRAMES``              a folder of images to classify (replay it in a loop)
``EC_CONFORMANCE_DATA_DIR``            an empty directory the agent may keep its state in
``EC_CONFORMANCE_TELEMETRY_INTERVAL_S`` publish telemetry at least this often (seconds)
``EC_CONFORMANCE_CONFIRM_S``           re-send a result not acknowledged within this (seconds)
=====================================  ========================================================
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from edgecascade.conformance.site import Site
from edgecascade.processes import die_with_parent

ENV_PREFIX = "EC_CONFORMANCE_"


@dataclass(frozen=True, slots=True)
class AgentInputs:
    """What the suite hands the agent besides its connection."""

    model: Path
    frames: Path
    telemetry_interval_s: float = 1.0
    confirm_s: float = 3.0


def agent_environment(site: Site, inputs: AgentInputs, data_dir: Path) -> dict[str, str]:
    ids = site.ids
    values = {
        "BROKER_HOST": site.agent_host,
        "BROKER_PORT": str(site.site_broker.port),
        "WS_URL": site.ws_url,
        "SITE": ids.site,
        "DEVICE": ids.device,
        "GATEWAY": ids.gateway,
        "PREFIX": ids.prefix,
        "USERNAME": site.device_user,
        "PASSWORD": site.passwords[site.device_user],
        "MODEL": str(inputs.model.resolve()),
        "MODEL_PUBLIC_KEY": str(site.public_key_path.resolve()),
        "MODEL_PUBLIC_KEY_PEM": site.public_key_path.read_text(),
        "FRAMES": str(inputs.frames.resolve()),
        "DATA_DIR": str(data_dir.resolve()),
        "TELEMETRY_INTERVAL_S": f"{inputs.telemetry_interval_s:g}",
        "CONFIRM_S": f"{inputs.confirm_s:g}",
    }
    return {ENV_PREFIX + key: value for key, value in values.items()}


class LaunchedAgent:
    """``command`` under ``sh -c`` with ``env`` added to the suite's environment."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                start_new_session=True,  # its own process group: killed as one
                preexec_fn=die_with_parent,
            )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def _family(self) -> list[psutil.Process]:
        """Everything the agent started, also what left its process group (a browser that a
        launcher starts in a session of its own)."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the agent and everything it started (no goodbye: the broker's LWT speaks)."""
        self._end(signal.SIGKILL, grace_s=0.0)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the agent's process group, SIGKILL to what is left after ``timeout``."""
        self._end(signal.SIGTERM, grace_s=timeout)

    def _end(self, first: signal.Signals, grace_s: float) -> None:
        if self.proc.poll() is not None:
            return  # reaped: its pid (and group id) may belong to another process by now
        family = self._family()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, first)
        if grace_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
