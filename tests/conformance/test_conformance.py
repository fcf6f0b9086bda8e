"""The conformance suite against the project's own agent (every check passes) and against broken
agents (the check that should fail does)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from edgecascade.cli import main
from edgecascade.conformance.context import Timeouts
from edgecascade.conformance.report import Status
from edgecascade.conformance.runner import Options, run_conformance

FAKE = Path(__file__).with_name("fake_agent.py")
PYTHON_AGENT = f"{shlex.quote(sys.executable)} -m edgecascade.conformance.python_agent"


def fake(mode: str) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} {mode}"


def test_the_python_agent_passes_every_check(tmp_path: Path) -> None:
    # A high threshold: most frames of the replayed sample are escalated.
    options = Options(agent_cmd=f"{PYTHON_AGENT} --threshold 0.9", workdir=tmp_path, say=print)
    report = run_conformance(options)
    statuses = {check.name: check.status for check in report.checks}
    assert report.passed, report.table()
    assert set(statuses.values()) == {Status.PASS}, report.table()
    assert {name.split(".")[0] for name in statuses} >= {
        "state",
        "results",
        "escalations",
        "acks",
        "verdicts",
        "commands",
        "offers",
        "lwt",
        "site",
    }
    assert len(statuses) >= 20


def test_an_agent_without_a_last_will_fails_the_lwt_check(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["conformance", "run", "--agent-cmd", fake("no-lwt"), "--output", str(out)]
    argv += ["--check", "lwt", "--lwt-timeout", "3"]  # state runs anyway
    assert main(argv) == 1
    report = json.loads(out.read_text())
    statuses = {row["name"]: row["status"] for row in report["checks"]}
    assert report["passed"] is False
    assert statuses == {"state.online": "pass", "state.retained": "pass", "lwt.offline": "fail"}


def test_an_agent_that_installs_any_offer_fails_the_offer_checks(tmp_path: Path) -> None:
    options = Options(
        agent_cmd=fake("accepts-any-offer"),
        groups=["state", "offers", "lwt"],
        workdir=tmp_path,
        timeouts=Timeouts(offer=10, event=5),
        say=print,
    )
    report = run_conformance(options)
    statuses = {check.name: check.status for check in report.checks}
    assert not report.passed
    for refused in ("offers.tampered", "offers.expired", "offers.replayed"):
        assert statuses[refused] is Status.FAIL, report.table()
    assert statuses["lwt.offline"] is Status.PASS  # it has a last will
    assert statuses["offers.state"] is Status.FAIL  # its state never names the new model


def test_an_agent_that_ignores_acks_fails_the_ack_check(tmp_path: Path) -> None:
    report = run_conformance(
        Options(agent_cmd=fake("ignores-acks"), groups=["state", "acks"], workdir=tmp_path)
    )
    statuses = {check.name: check.status for check in report.checks}
    assert statuses["acks.gateway"] is Status.PASS  # the gateway did acknowledge it
    assert statuses["acks.honoured"] is Status.FAIL, report.table()
    assert not report.passed


def test_without_launching_the_kill_check_is_skipped(tmp_path: Path) -> None:
    """--no-launch prints the settings; an agent started from them is tested, LWT skipped."""
    started: list[subprocess.Popen[bytes]] = []

    def say(text: str) -> None:
        exports = [line.removeprefix("export ") for line in text.splitlines()]
        if exports and all(line.startswith("EC_CONFORMANCE_") for line in exports):
            env = dict(shlex.split(line)[0].split("=", 1) for line in exports)
            argv = [sys.executable, str(FAKE), "no-lwt"]
            started.append(subprocess.Popen(argv, env={**os.environ, **env}))

    options = Options(agent_cmd=None, launch=False, groups=["state", "lwt"], say=say)
    try:
        report = run_conformance(options)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    statuses = {check.name: check.status for check in report.checks}
    assert len(started) == 1
    assert statuses == {
        "state.online": Status.PASS,
        "state.retained": Status.PASS,
        "lwt.offline": Status.SKIP,
    }
    assert report.passed


def test_an_agent_that_exits_fails_at_once_with_its_log(tmp_path: Path) -> None:
    options = Options(agent_cmd="echo no broker for me; exit 3", workdir=tmp_path, say=print)
    report = run_conformance(options)
    rows = {check.name: check for check in report.checks}
    assert rows["state.online"].detail == "the agent exited with 3 before it came online"
    assert "no broker for me" in rows["agent.log"].detail
    assert rows["results"].status is Status.SKIP  # the rest: never came online


def test_the_kill_reaches_what_a_launcher_started_in_a_session_of_its_own(tmp_path: Path) -> None:
    """As a browser started by a Playwright launcher: not in the launcher's process group, but
    killed with it, so its connection drops and the last will is published."""
    command = f"setsid {fake('accepts-any-offer')} & wait"
    report = run_conformance(
        Options(agent_cmd=command, groups=["state", "lwt"], workdir=tmp_path, say=print)
    )
    statuses = {check.name: check.status for check in report.checks}
    assert statuses["lwt.offline"] is Status.PASS, report.table()
