"""End to end over real brokers and real processes: agents -> site broker -> gateway -> cloud
broker -> cloud service -> SQL store, read back through the HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.processes import ProcessGroup
from tests.utils.mqtt import wait_until
from tests.utils.paths import (
    EDGE_MODEL,
    IMAGENET_EDGE_MODEL,
    IMAGENET_PHOTOS,
    REPO,
    sample_subset,
)

pytestmark = pytest.mark.e2e


def get(url: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        return json.loads(resp.read())


def viewer_token(data_dir: Path) -> str:
    """A viewer token from the real CLI, as an operator would make one."""
    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "cloud",
        "token",
        "create",
        "--name",
        "e2e",
        "--role",
        "viewer",
        "--data-dir",
        str(data_dir),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


def all_results(api: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = get(f"{api}/api/results?limit=50&offset={len(items)}", token)
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items


def answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


def test_every_frame_of_every_agent_is_stored_exactly_once(tmp_path: Path) -> None:
    frames = sample_subset(tmp_path / "frames", per_class=2)
    expected_ids = {p.relative_to(tmp_path / "frames").as_posix() for p in frames}
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    group = ProcessGroup(tmp_path / "logs")
    with MosquittoBroker(tmp_path / "site") as site, MosquittoBroker(tmp_path / "cloud") as cloud:
        try:
            group.spawn_cli(
                "cloud",
                "cloud",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "c"),
                "--mqtt-port",
                str(cloud.port),
            )
            assert wait_until(lambda: answers(f"{api}/healthz"), timeout=60), group.log_tail(
                "cloud"
            )
            token = viewer_token(tmp_path / "c")
            group.spawn_cli(
                "gateway",
                "gateway",
                "--site",
                "s1",
                "--data-dir",
                str(tmp_path / "g"),
                "--site-mqtt-port",
                str(site.port),
                "--cloud-mqtt-port",
                str(cloud.port),
            )
            agents = [
                group.spawn_cli(
                    f"cam{i}",
                    "agent",
                    "--site",
                    "s1",
                    "--device",
                    f"cam{i}",
                    "--model",
                    str(EDGE_MODEL),
                    "--frames",
                    str(tmp_path / "frames"),
                    "--fps",
                    "50",
                    "--data-dir",
                    str(tmp_path / f"a{i}"),
                    "--mqtt-port",
                    str(site.port),
                )
                for i in (1, 2)
            ]
            for i, proc in enumerate(agents, 1):
                assert proc.wait(timeout=120) == 0, group.log_tail(f"cam{i}")
            assert wait_until(
                lambda: get(f"{api}/api/results?limit=1", token)["total"] >= 40, timeout=60
            ), group.log_tail("gateway") + group.log_tail("cloud")
            stored = all_results(api, token)
            devices = get(f"{api}/api/devices", token)
        finally:
            group.stop_all()
    assert len(stored) == 40
    assert len({r["msg_id"] for r in stored}) == 40
    for device in ("cam1", "cam2"):
        assert {r["frame_id"] for r in stored if r["device"] == device} == expected_ids
    names = {d["device"] for d in _items(devices)}
    assert {"cam1", "cam2"} <= names


def _items(payload: Any) -> list[dict[str, Any]]:
    return payload["items"] if isinstance(payload, dict) else list(payload)


def test_demo_runs_stores_everything_and_leaves_no_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecascade",
            "demo",
            "--devices",
            "2",
            "--duration",
            "3",
            "--fps",
            "10",
            "--workdir",
            str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every result stored" in proc.stdout
    assert "results stored" in proc.stdout  # progress lines
    assert "/dashboard/" in proc.stdout and "admin token: ec_" in proc.stdout
    summary = dict(
        line.strip().rsplit(None, 1)
        for line in proc.stdout.split("summary", 1)[1].splitlines()
        if line.strip() and not line.strip().startswith(("->", "logs"))
    )
    assert summary["frames"] == summary["results"] == summary["stored"] == "60"
    # The re-inference worker ran and stopped cleanly with the rest.
    assert "worker worker-1 stopped" in (workdir / "logs" / "worker.log").read_text()
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(workdir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_imagenet_demo_runs_the_committed_pair_on_the_photos(tmp_path: Path) -> None:
    """``--pair imagenet``: one camera on data/imagenet-photos with the EfficientNet-Lite0 int8
    model, the Lite2 worker; every result is stored with an ImageNet label and ground truth."""
    import sqlite3

    from edgecascade.shared.runtime.card import load_card_for

    workdir = tmp_path / "demo"
    argv = ["demo", "--pair", "imagenet", "--devices", "1", "--duration", "3", "--fps", "5"]
    proc = subprocess.run(
        [sys.executable, "-m", "edgecascade", *argv, "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every result stored" in proc.stdout
    assert "registered model imagenet-edge-int8 1.0.0" in proc.stdout
    imagenet = set(load_card_for(IMAGENET_EDGE_MODEL).labels)
    with sqlite3.connect(workdir / "cloud" / "cloud.db") as db:
        results = db.execute("SELECT model_name, label, ground_truth, frame_id FROM results")
        rows = results.fetchall()
        verdicts = {label for (label,) in db.execute("SELECT label FROM verdicts")}
        escalated = db.execute("SELECT count(*) FROM results WHERE escalated").fetchone()[0]
    assert len(rows) == 15  # 3 s at 5 fps
    assert {name for name, *_ in rows} == {"imagenet-edge-int8"}
    assert {label for _, label, *_ in rows} <= imagenet
    photos = {p.relative_to(IMAGENET_PHOTOS).as_posix() for p in IMAGENET_PHOTOS.rglob("*.jpg")}
    assert {frame.split("#")[0] for *_, frame in rows} == photos  # every photo replayed
    truths = {truth for _, _, truth, _ in rows if truth}
    assert truths == {"tabby cat", "espresso", "military uniform"} and truths <= imagenet
    assert ("espresso", "espresso") in {(label, truth) for _, label, truth, _ in rows}
    # The astronaut has no class above the threshold: it escalates; the worker answers in the
    # same label space (the cloud model's, also ImageNet's).
    assert escalated >= 1 and verdicts <= imagenet


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    import signal

    workdir = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = ["demo", "--devices", "2", "--duration", "60", "--workdir", str(workdir)]

    def interruptible() -> None:
        # A job started in the background by a non-interactive shell ignores SIGINT, and its
        # children inherit that: give the demo the disposition a terminal's Ctrl-C meets.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with subprocess.Popen(
        [sys.executable, "-m", "edgecascade", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=interruptible,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("started 2 camera"):
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # two brokers, cloud, gateway, two cameras
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=60) == 130
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
