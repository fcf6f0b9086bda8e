"""The suite's report and its pieces that need no broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecascade.conformance.agent import AgentInputs, agent_environment
from edgecascade.conformance.defaults import DEFAULT_FRAMES, DEFAULT_MODEL, GROUP_NAMES
from edgecascade.conformance.python_agent import agent_argv
from edgecascade.conformance.recorder import Seen
from edgecascade.conformance.report import Report, failed, passed, skipped
from edgecascade.conformance.runner import GROUPS, Options, run_conformance
from edgecascade.conformance.schemas import schema_problem
from edgecascade.conformance.site import Site, SiteIds
from edgecascade.shared.codec import encode
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.messages import ModelRef, Prediction, ResultMessage
from edgecascade.shared.mqtt import Received
from edgecascade.shared.topics import Kind, Topic, topic


def test_a_skip_does_not_fail_the_run_a_failure_does() -> None:
    report = Report([passed("a.one", "fine"), skipped("b.two", "not observable")])
    assert report.passed
    report.checks.append(failed("c.three", "x" * 250))
    assert not report.passed
    document = json.loads(report.to_json())
    assert document["passed"] is False
    assert document["checks"][2] == {"name": "c.three", "status": "fail", "detail": "x" * 250}
    table = report.table(width=80)
    assert table.splitlines()[-1] == "1 passed, 1 failed, 1 skipped: FAILED"
    assert all(len(line) <= 80 for line in table.splitlines())  # long details wrap


def test_the_cli_lists_the_groups_in_the_order_they_run() -> None:
    assert tuple(GROUPS) == GROUP_NAMES


def test_a_run_without_an_agent_command_or_with_an_unknown_check_is_refused() -> None:
    with pytest.raises(ConfigError, match="--agent-cmd"):
        run_conformance(Options(agent_cmd=None))
    with pytest.raises(ConfigError, match="unknown check"):
        run_conformance(Options(agent_cmd="true", groups=["state", "telepathy"]))
    same = Options(agent_cmd="true", offer_model=DEFAULT_MODEL)
    with pytest.raises(ConfigError, match="is the model the agent starts with"):
        run_conformance(same)


def test_the_agent_is_told_the_advertised_host_and_a_loopback_broker_cannot_advertise(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"give --bind 0\.0\.0\.0"):
        run_conformance(Options(agent_cmd="true", advertise="192.0.2.7"))
    site = Site(tmp_path, SiteIds("site1", "cam1"), bind="0.0.0.0", advertise="192.0.2.7")
    env = agent_environment(site, AgentInputs(DEFAULT_MODEL, DEFAULT_FRAMES), tmp_path / "data")
    assert env["EC_CONFORMANCE_BROKER_HOST"] == "192.0.2.7"
    assert env["EC_CONFORMANCE_WS_URL"] == f"ws://192.0.2.7:{site.ws_port}/"
    assert site.host == "127.0.0.1"  # the suite and its gateway stay on the loopback


def test_the_python_agent_launcher_maps_every_setting() -> None:
    env = {
        f"EC_CONFORMANCE_{k}": v
        for k, v in {
            "USERNAME": "s1/cam9",
            "PASSWORD": "pw",
            "PREFIX": "ec",
            "GATEWAY": "gw",
            "MODEL_PUBLIC_KEY": "/k.pem",
            "TELEMETRY_INTERVAL_S": "1",
            "CONFIRM_S": "3",
            "SITE": "s1",
            "DEVICE": "cam9",
            "MODEL": "/m.tflite",
            "FRAMES": "/frames",
            "DATA_DIR": "/data",
            "BROKER_HOST": "127.0.0.1",
            "BROKER_PORT": "1884",
        }.items()
    }
    argv, settings = agent_argv(env, ["--threshold", "0.9"])
    assert argv[:5] == ["agent", "--site", "s1", "--device", "cam9"]
    assert argv[-2:] == ["--threshold", "0.9"] and "1884" in argv
    assert settings["EC_AGENT_MQTT__PASSWORD"] == "pw"
    assert settings["EC_AGENT_GATEWAY_ID"] == "gw"
    with pytest.raises(KeyError, match="EC_CONFORMANCE_SITE"):
        agent_argv({k: v for k, v in env.items() if k != "EC_CONFORMANCE_SITE"})


def test_the_published_json_schema_judges_what_an_agent_sent() -> None:
    good = ResultMessage(
        frame_id="f1",
        captured_at=1.0,
        model=ModelRef(name="m", version="1"),
        top=[Prediction(index=0, label="a", score=0.5)],
    )
    wire = topic("s1", "cam1", Kind.RESULT)

    def seen(payload: bytes) -> Seen:
        return Seen(0.0, Received(wire, payload, 1, False, 1), Topic.parse(wire))

    assert schema_problem(seen(encode(good))) is None
    document = json.loads(encode(good))
    document["top"][0]["score"] = 1.5
    problem = schema_problem(seen(json.dumps(document).encode()))
    assert problem is not None and problem.startswith("ResultMessage JSON Schema: top/0/score")
