"""``edgecascade cloud``: light import, flags over file, migrate, serve and stop on SIGTERM."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.cloud.cli import _overrides, add_parser, load, migrate
from edgecascade.cloud.db.engine import make_engine
from edgecascade.cloud.db.migrate import current_revision, head_revision, upgrade
from tests.utils.mqtt import wait_until

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgecascade")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_importing_the_cli_imports_nothing_heavy() -> None:
    code = (
        "import sys, cloud.cli; "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'alembic') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text('data_dir = "/srv/ec"\n[http]\nport = 9000\nhost = "0.0.0.0"\n')
    args = parse("cloud", "--config", str(config), "--port", "9100", "--mqtt-host", "broker")
    assert _overrides(args) == {"http": {"port": 9100}, "mqtt": {"host": "broker"}}
    settings = load(args)
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9100)
    assert settings.mqtt.host == "broker"
    assert settings.db_url == "sqlite:////srv/ec/cloud.db"
    assert settings.blob_dir == Path("/srv/ec/blobs")


def test_environment_sits_between_file_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text("[http]\nport = 9000\n[mqtt]\nport = 1884\n")
    monkeypatch.setenv("EC_CLOUD_HTTP__PORT", "7000")
    monkeypatch.setenv("EC_CLOUD_MQTT__PORT", "1999")
    monkeypatch.setenv("EC_CLOUD_INGEST__BATCH_SIZE", "64")
    settings = load(parse("cloud", "--config", str(config), "--mqtt-port", "1888"))
    assert (settings.http.port, settings.mqtt.port, settings.ingest.batch_size) == (7000, 1888, 64)


def test_migrate_takes_options_before_or_after_the_action(tmp_path: Path) -> None:
    for where, argv in {
        "after": ("cloud", "migrate", "--data-dir", str(tmp_path / "after")),
        "before": ("cloud", "--data-dir", str(tmp_path / "before"), "migrate"),
    }.items():
        args = parse(*argv)
        assert args.func is migrate
        assert args.func(args) == 0
        engine = make_engine(f"sqlite:///{tmp_path / where / 'cloud.db'}")
        assert current_revision(engine) == head_revision()
        engine.dispose()


def test_serve_answers_and_stops_cleanly_on_sigterm(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    port = free_port()
    script = (
        "import argparse, logging, sys; from cloud.cli import add_parser; "
        "logging.basicConfig(level='INFO'); p = argparse.ArgumentParser(); "
        "add_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    argv = [
        "cloud",
        *("--data-dir", str(tmp_path / "cloud"), "--port", str(port)),
        *("--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        bodies: list[object] = []

        def healthy() -> bool:
            try:
                bodies.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json())
            except httpx.HTTPError:
                return False
            return bodies[-1] == {"status": "ok", "database": True, "mqtt": True}

        assert wait_until(lambda: proc.poll() is not None or healthy(), timeout=20)
        assert bodies[-1:] == [{"status": "ok", "database": True, "mqtt": True}]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal: death by SIGTERM is the norm.
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert f"cloud API on http://127.0.0.1:{port}" in stderr
    assert (tmp_path / "cloud" / "cloud.db").exists()


@pytest.mark.parametrize("flag", ["--port", "--mqtt-port"])
def test_bad_port_is_a_config_error(flag: str) -> None:
    from edgecascade.shared.errors import ConfigError

    with pytest.raises(ConfigError, match="port"):
        load(parse("cloud", flag, "0"))


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("cloud", "--help")
    text = capsys.readouterr().out
    for flag in ("--config", "--host", "--port", "--database-url", "--data-dir", "--mqtt-host"):
        assert flag in text
    assert "migrate" in text


def test_worker_refuses_an_unmigrated_database_then_serves_verdicts(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    from edgecascade.shared.codec import decode
    from edgecascade.shared.messages import VerdictMessage
    from edgecascade.shared.topics import Kind, Topic, topic_filter
    from tests.cloud.test_worker import escalations
    from tests.utils.mqtt import Collector, publish_all

    data = tmp_path / "cloud"
    argv = [
        sys.executable,
        "-m",
        "edgecascade",
        "cloud",
        "worker",
        "--data-dir",
        str(data),
        "--mqtt-port",
        str(broker.port),
        "--worker-id",
        "w1",
    ]
    refused = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "run `edgecascade cloud migrate` first" in refused.stderr

    upgrade(f"sqlite:///{data / 'cloud.db'}")
    proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        ((wire, header, cloud_label),) = escalations(1)
        with Collector(broker.settings, topic_filter(Kind.VERDICT), client_id="device") as device:
            # The worker subscribes after it starts: resend until its session takes one.
            def answered() -> bool:
                if not device.messages:
                    publish_all(broker.settings, [wire])
                return wait_until(lambda: bool(device.messages), timeout=1.0)

            assert wait_until(answered, timeout=30)
            message = device.messages[0]
            verdict = decode(Topic.parse(message.topic), message.payload).message
        assert isinstance(verdict, VerdictMessage)
        assert verdict.escalation_id == header.msg_id and verdict.top[0].label == cloud_label
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "worker w1 stopped" in stderr
