"""The agent as systemd runs it: READY, WATCHDOG, STOPPING; SIGTERM flushes and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import StateMessage
from edgecascade.shared.topics import Kind, Topic, topic, topic_filter
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EDGE_MODEL, REPO, sample_subset


def test_sigterm_flushes_everything_and_says_goodbye(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    sample_subset(tmp_path / "frames", per_class=5)
    notify = str(tmp_path / "notify.sock")
    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "agent",
        "--site",
        "s1",
        "--device",
        "cam1",
        "--model",
        str(EDGE_MODEL),
        "--frames",
        str(tmp_path / "frames"),
        "--fps",
        "200",
        "--loop",
        "--data-dir",
        str(tmp_path / "agent"),
        "--mqtt-port",
        str(broker.port),
        "--no-gateway",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NOTIFY_SOCKET": notify,
        "WATCHDOG_USEC": "1000000",
    }
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd,
        Collector(broker.settings, topic_filter(Kind.RESULT), topic_filter(Kind.STATE)) as seen,
    ):
        systemd.bind(notify)
        systemd.settimeout(30)
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        assert systemd.recv(256).startswith(b"READY=1")
        assert systemd.recv(256) == b"WATCHDOG=1"
        assert wait_until(lambda: len(seen.messages) > 50)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        notes = []
        while b"STOPPING=1" not in notes:
            notes.append(systemd.recv(256))
        stats = json.loads((tmp_path / "agent" / "stats.json").read_text())
        state_topic = topic("s1", "cam1", Kind.STATE)

        def delivered() -> list[str]:
            return [
                decode(Topic.parse(m.topic), m.payload).message.msg_id
                for m in seen.messages
                if m.topic != state_topic
            ]

        assert wait_until(lambda: len(delivered()) >= stats["results"])
        last_state = [m for m in seen.messages if m.topic == state_topic][-1]
    assert stats["outbox_depth"] == 0  # flushed before exit
    assert len(delivered()) == len(set(delivered())) == stats["results"]
    final = decode(Topic.parse(last_state.topic), last_state.payload).message
    assert isinstance(final, StateMessage) and final.status == "offline"
