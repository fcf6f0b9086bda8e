"""Accelerator delegates: a library that fails to load is a clear error, or, when the user asks
for it, a warning and the CPU; results and telemetry say which ran the model."""

from __future__ import annotations

import ctypes.util
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.agent import Agent
from edgecascade.edge_agent.settings import AgentSettings, RuntimeSettings, SourceSettings
from edgecascade.shared.codec import decode
from edgecascade.shared.errors import AcceleratorError
from edgecascade.shared.messages import ResultMessage, TelemetryMessage
from edgecascade.shared.runtime.runtime import Accelerator, ModelRuntime
from edgecascade.shared.topics import Kind, Topic, topic_filter
from tests.utils.agents import agent_settings
from tests.utils.factories import make_result
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE

MISSING = "/nonexistent/libedgetpu.so.1"


def test_a_missing_delegate_library_is_an_error_naming_it_and_why() -> None:
    with pytest.raises(AcceleratorError) as raised:
        ModelRuntime.load(EDGE_MODEL, accelerator=Accelerator(MISSING))
    message = str(raised.value)
    assert f"accelerator delegate '{MISSING}' failed to load" in message
    assert "No such file or directory" in message or "cannot open" in message, message


def test_a_library_that_is_no_delegate_is_an_error_naming_it() -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    with pytest.raises(AcceleratorError, match=rf"'{libm}' failed to load: .*tflite_plugin"):
        ModelRuntime.load(EDGE_MODEL, accelerator=Accelerator(libm))


def test_fallback_runs_on_the_cpu_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        runtime = ModelRuntime.load(EDGE_MODEL, accelerator=Accelerator(MISSING, fallback=True))
    assert runtime.accelerator == "cpu"
    assert any(MISSING in r.getMessage() and "CPU" in r.getMessage() for r in caplog.records)
    image = next(EVAL_SAMPLE.rglob("*.png"))
    frame = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    assert frame is not None
    assert runtime.classify(np.asarray(frame, dtype=np.uint8)).accelerator == "cpu"
    assert ModelRuntime.load(EDGE_MODEL).accelerator == "cpu"  # no delegate at all


def test_runtime_settings_name_their_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"delegate_options \{'device': 'usb'\} need"):
        RuntimeSettings(delegate_options={"device": "usb"})
    settings = AgentSettings(runtime=RuntimeSettings(delegate=MISSING), data_dir=tmp_path)
    assert settings.runtime.accelerator() == Accelerator(MISSING)
    with pytest.raises(AcceleratorError, match="failed to load"):
        Agent(settings)  # no slot, no source opened: the agent does not start


def test_old_messages_without_the_field_are_valid_and_say_cpu() -> None:
    result = make_result()
    data = result.model_dump(mode="json")
    data.pop("accelerator")
    assert ResultMessage.model_validate(data).accelerator == "cpu"


def test_results_and_telemetry_say_which_accelerator_ran(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    settings = agent_settings(
        broker,
        tmp_path / "agent",
        SourceSettings(path=EVAL_SAMPLE, fps=1000, max_frames=5),
        runtime=RuntimeSettings(delegate=MISSING, delegate_fallback=True),
        telemetry_interval_s=3600,
    )
    filters = (topic_filter(Kind.RESULT), topic_filter(Kind.TELEMETRY))
    with Collector(broker.settings, *filters) as collector:
        stats = Agent(settings).run(threading.Event())

        def messages() -> list[object]:
            return [decode(Topic.parse(m.topic), m.payload).message for m in collector.messages]

        assert wait_until(lambda: any(isinstance(m, TelemetryMessage) for m in messages()))
        assert wait_until(lambda: sum(isinstance(m, ResultMessage) for m in messages()) == 5)
    assert stats.results == 5
    got = messages()
    results = [m for m in got if isinstance(m, ResultMessage)]
    telemetry = [m for m in got if isinstance(m, TelemetryMessage)]
    assert {r.accelerator for r in results} == {"cpu"}
    assert telemetry[-1].accelerator == "cpu"
