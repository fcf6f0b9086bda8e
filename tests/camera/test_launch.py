"""``edgecascade camera launch``, the conformance suite's ``--agent-cmd`` for the page: settings
from the ``EC_CONFORMANCE_*`` variables, its own server, headless chromium with a fake camera;
SIGKILLed as a process group, the broker publishes the page's offline will."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgecascade.camera.launch import _settings, page_url
from edgecascade.deploy.mosquitto import device_username
from edgecascade.processes import die_with_parent
from edgecascade.shared.codec import decode
from edgecascade.shared.errors import EdgeCascadeError
from edgecascade.shared.messages import StateMessage
from edgecascade.shared.topics import Kind, Topic
from tests.camera.conftest import CameraSite
from tests.utils.camera import DEVICE, GATEWAY, MODEL, SITE, TESTER
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EVAL_SAMPLE, REPO


def _states(collector: Collector) -> list[StateMessage]:
    out = []
    for message in collector.messages:
        parsed = Topic.parse(message.topic)
        if parsed.kind is Kind.STATE and parsed.device == DEVICE:
            state = decode(parsed, message.payload).message
            assert isinstance(state, StateMessage)
            out.append(state)
    return out


def test_launched_page_publishes_and_its_will_follows_a_sigkill(
    camera_page: Path, camera_site: CameraSite, tmp_path: Path
) -> None:
    site = camera_site.site
    username = device_username(SITE, DEVICE)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "EC_CONFORMANCE_WS_URL": site.ws_url,
        "EC_CONFORMANCE_SITE": SITE,
        "EC_CONFORMANCE_DEVICE": DEVICE,
        "EC_CONFORMANCE_GATEWAY": GATEWAY,
        "EC_CONFORMANCE_PREFIX": "ec",
        "EC_CONFORMANCE_USERNAME": username,
        "EC_CONFORMANCE_PASSWORD": site.passwords[username],
        "EC_CONFORMANCE_MODEL": str(MODEL),
        "EC_CONFORMANCE_FRAMES": str(EVAL_SAMPLE),
        "EC_CONFORMANCE_TELEMETRY_INTERVAL_S": "1",
    }
    command = [sys.executable, "-m", "edgecascade", "camera", "launch"]
    with Collector(site.mqtt(TESTER), f"ec/v1/{SITE}/{DEVICE}/#", client_id=TESTER) as seen:
        launcher = subprocess.Popen(
            command, env=env, start_new_session=True, preexec_fn=die_with_parent
        )
        try:

            def publishing() -> bool:
                kinds = {Topic.parse(m.topic).kind for m in seen.messages}
                return {Kind.RESULT, Kind.TELEMETRY} <= kinds

            assert wait_until(publishing, timeout=40)
            assert _states(seen)[0].status == "online"
        finally:
            os.killpg(launcher.pid, signal.SIGKILL)  # the launcher, its driver and chromium
            launcher.wait(timeout=10)
        assert wait_until(lambda: _states(seen)[-1].status == "offline", timeout=20)


def test_launcher_names_the_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WS_URL", "SITE", "DEVICE"):
        monkeypatch.delenv(f"EC_CONFORMANCE_{name}", raising=False)
    names = ("ws", "site", "device", "username", "password", "gateway", "prefix")
    args = argparse.Namespace(**dict.fromkeys(names), param=None)
    with pytest.raises(EdgeCascadeError, match=r"--ws or EC_CONFORMANCE_WS_URL.*--device"):
        _settings(args)
    args.site, args.ws, args.device, args.password = "s1", "ws://h:1/", "cam1", ""
    url = page_url("http://x", _settings(args))
    assert url == "http://x/?site=s1&device=cam1&ws=ws%3A%2F%2Fh%3A1%2F&fps=10"
