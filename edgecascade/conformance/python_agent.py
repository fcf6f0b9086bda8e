"""The project's own agent as a conformance ``--agent-cmd``:
``python -m edgecascade.conformance.python_agent [agent flags...]``.

It reads the ``EC_CONFORMANCE_*`` variables the suite hands every agent, turns them into the
Python agent's own settings (``EC_AGENT_*`` and ``edgecascade agent`` flags) and replaces itself
with ``edgecascade agent`` (so the suite's SIGKILL reaches the agent). Flags given after it are
passed on (for instance ``--threshold 0.9``). Agents in other languages do the same mapping in
their own launcher.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from edgecascade.conformance.agent import ENV_PREFIX


def agent_argv(
    env: Mapping[str, str], extra: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """``edgecascade agent`` arguments and the ``EC_AGENT_*`` variables for the suite's ``env``;
    KeyError names a variable the suite did not set."""

    def get(name: str) -> str:
        return env[ENV_PREFIX + name]

    settings = {
        "EC_AGENT_MQTT__USERNAME": get("USERNAME"),
        "EC_AGENT_MQTT__PASSWORD": get("PASSWORD"),
        "EC_AGENT_MQTT__PREFIX": get("PREFIX"),
        "EC_AGENT_MQTT__RECONNECT_MIN": "0.2",
        "EC_AGENT_MQTT__RECONNECT_MAX": "1.0",
        "EC_AGENT_GATEWAY_ID": get("GATEWAY"),
        "EC_AGENT_MODEL_PUBLIC_KEY": get("MODEL_PUBLIC_KEY"),
        "EC_AGENT_TELEMETRY_INTERVAL_S": get("TELEMETRY_INTERVAL_S"),
        "EC_AGENT_OUTBOX_CONFIRM_S": get("CONFIRM_S"),
    }
    argv = [
        *("agent", "--site", get("SITE"), "--device", get("DEVICE")),
        *("--model", get("MODEL"), "--frames", get("FRAMES"), "--loop", "--fps", "10"),
        *("--data-dir", get("DATA_DIR")),
        *("--mqtt-host", get("BROKER_HOST"), "--mqtt-port", get("BROKER_PORT")),
        *extra,
    ]
    return argv, settings


def main() -> None:
    try:
        argv, settings = agent_argv(os.environ, sys.argv[1:])
    except KeyError as exc:
        sys.exit(f"python_agent: {exc.args[0]} is not set: run me from edgecascade conformance run")
    os.environ.update(settings)
    os.execv(sys.executable, [sys.executable, "-m", "edgecascade", *argv])


if __name__ == "__main__":
    main()
