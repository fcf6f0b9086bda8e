"""Agents for tests: settings against a test broker, and an agent running in a thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.agent import Agent
from edgecascade.edge_agent.settings import AgentSettings, SourceSettings
from tests.utils.paths import EDGE_MODEL


def agent_settings(
    broker: MosquittoBroker, data_dir: Path, source: SourceSettings, **overrides: Any
) -> AgentSettings:
    """Device ``s1/cam1`` with the committed edge model and no site gateway to wait for."""
    fields: dict[str, Any] = {
        "site": "s1",
        "device": "cam1",
        "gateway_id": None,
        "model": EDGE_MODEL,
        "data_dir": data_dir,
        "mqtt": broker.settings,
        "source": source,
    }
    fields.update(overrides)
    return AgentSettings.model_validate(fields)


class RunningAgent:
    """``Agent.run`` in a thread until :meth:`close`."""

    def __init__(self, settings: AgentSettings) -> None:
        self.agent = Agent(settings)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
