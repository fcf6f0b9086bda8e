"""docker-compose.yml and the Dockerfiles, checked without a Docker engine (none runs here).

The compose file must stay the `edgecascade demo` topology: the demo's own process list is
recorded (its start-up code run with a recording process group) and every process must have its
service, with the same command and the same options apart from local paths and ports. Every
command must parse with today's CLI and every EC_* variable must load into the settings. Each
image is multi-stage, ends as a non-root user, installs its component's extra and has the files
its environment points at.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgecascade.cli import build_parser
from edgecascade.cloud.settings import CloudSettings
from edgecascade.demo import Demo, DemoPlan
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.processes import environment
from edgecascade.shared.config import ComponentSettings, load_settings
from tests.utils.paths import REPO

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "build" in s}
# Options that name this machine's paths and ports, or the demo's run length: not compared.
# Options whose values are this machine's (paths, ports). The demo also hands the gateway the
# manifest signing key it generated; compose has no key until one is provisioned
# (docs/DEPLOYMENT.md), so model distribution stays off there.
LOCAL = {
    "data_dir",
    "port",
    "host",
    "mqtt_port",
    "mqtt_host",
    "site_mqtt_port",
    "site_mqtt_host",
    "cloud_mqtt_port",
    "cloud_mqtt_host",
    "model",
    "frames",
    "max_frames",
    "cloud_model",
    "model_public_key",
}
IMAGE_OF = {
    "agent": "Dockerfile.edge",
    "gateway": "Dockerfile.gateway",
    "cloud": "Dockerfile.cloud",
}
EXTRA_OF = {"Dockerfile.edge": "edge", "Dockerfile.gateway": "gateway", "Dockerfile.cloud": "cloud"}
SETTINGS: dict[str, type[ComponentSettings]] = {
    "EC_AGENT_": AgentSettings,
    "EC_GATEWAY_": GatewaySettings,
    "EC_CLOUD_": CloudSettings,
}


class Recorder:
    """Stands in for the demo's process group: keeps what it was asked to start."""

    def __init__(self) -> None:
        self.spawned: list[tuple[str, list[str]]] = []
        self.children: list[tuple[str, object]] = []

    def spawn_cli(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.spawned.append((name, list(args)))

    def wait_logged(self, names: list[str], marker: str, timeout: float) -> None:
        pass


@pytest.fixture(scope="module")
def demo_processes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, list[str]]]:
    """What `edgecascade demo` (default options) starts: (name, edgecascade arguments)."""
    args = build_parser().parse_args(["demo"])
    plan = DemoPlan(
        devices=args.devices,
        duration=args.duration,
        fps=args.fps,
        site=args.site,
        model=args.model,
        cloud_model=args.cloud_model,
        frames=args.frames,
        threshold=args.threshold,
        workdir=tmp_path_factory.mktemp("demo"),
        http_port=8080,
    )
    demo = Demo(plan)
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "group", recorder)
        patch.setattr(demo, "_wait_http", lambda path, timeout: None)
        patch.setattr(demo, "create_token", lambda name, role: "")
        patch.setattr(demo, "_signing_key", lambda: Path("manifest-signing.pub"))
        patch.setattr("edgecascade.demo.register_models", lambda *args: None)
        patch.setattr(demo, "say", lambda text: None)
        demo._start_services(1883, 1884)
        demo._start_agents(1883)
    return recorder.spawned


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def kind(ns: argparse.Namespace) -> str:
    return " ".join(filter(None, [ns.command, getattr(ns, "cloud_action", None)]))


def test_every_demo_process_has_its_service(demo_processes: list[tuple[str, list[str]]]) -> None:
    compose = {name: parse(s["command"]) for name, s in OURS.items()}
    by_kind: dict[str, list[str]] = {}
    for name, ns in compose.items():
        by_kind.setdefault(kind(ns), []).append(name)
    cameras = [name for name, argv in demo_processes if parse(argv).command == "agent"]
    assert sorted(by_kind["agent"]) == sorted(cameras)  # the demo's default --devices
    for name, argv in demo_processes:
        ours = parse(argv)
        services = [name] if ours.command == "agent" else by_kind.get(kind(ours), [])
        assert services, f"no service runs `edgecascade {kind(ours)}` (demo process {name})"
        for service in services:
            theirs = compose[service]
            for option, value in vars(ours).items():
                if value is None or option in LOCAL or option == "func":
                    continue
                assert getattr(theirs, option, None) == value, f"{service}: --{option}"


def _env(values: dict[str, str]) -> dict[str, str]:
    """Compose's ${VAR:-default} as the default (what an empty environment gives)."""
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in values.items()}


def _load_with(values: dict[str, str]) -> None:
    for prefix, cls in SETTINGS.items():
        mine = {k: v for k, v in values.items() if k.startswith(prefix)}
        if mine:
            with environment(mine):
                load_settings(cls)  # raises ConfigError naming a bad key or value


def test_every_ec_variable_loads() -> None:
    for service in OURS.values():
        _load_with(_env(service.get("environment", {})))
    for dockerfile in IMAGE_OF.values():
        _load_with(dockerfile_env(dockerfile))


def test_depends_on_waits_for_what_it_needs() -> None:
    for name, service in SERVICES.items():
        for needed, rule in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} depends on unknown {needed}"
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_started"), (name, condition)
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[needed], f"{needed} has no healthcheck"
    for name in ("site-broker", "cloud-broker", "postgres", "cloud"):
        assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    # In compose files "$" interpolates: the broker's $SYS topic must be written "$$SYS".
    assert "$$SYS/broker/version" in SERVICES["site-broker"]["healthcheck"]["test"]


def test_each_service_runs_its_components_image() -> None:
    for name, service in OURS.items():
        dockerfile = Path(service["build"]["dockerfile"])
        assert service["build"]["context"] == "."
        assert dockerfile.name == IMAGE_OF[parse(service["command"]).command], name


def stages(dockerfile: str) -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = (REPO / "deploy" / "docker" / dockerfile).read_text().replace("\\\n", " ")
    result: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("FROM "):
            result.append([])
        if result and line.strip() and not line.startswith("#"):
            result[-1].append(line)
    return result


def dockerfile_env(dockerfile: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in stages(dockerfile)[-1]:
        if line.startswith("ENV "):
            pairs |= dict(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def copies(dockerfile: str) -> Iterator[tuple[str, str]]:
    for line in stages(dockerfile)[-1] + stages(dockerfile)[0]:
        if line.startswith("COPY ") and "--from=" not in line:
            source, destination = line.split()[1:3]
            yield source, destination


@pytest.mark.parametrize("dockerfile", sorted(EXTRA_OF))
def test_the_image_is_multi_stage_small_and_non_root(dockerfile: str) -> None:
    all_stages = stages(dockerfile)
    assert len(all_stages) >= 2
    final = all_stages[-1]
    base = final[0]
    assert re.fullmatch(r"FROM python:\$\{PYTHON\}-slim-\w+ AS runtime", base), base  # multi-arch
    assert not any("--platform" in line for stage in all_stages for line in stage)
    assert any(line.startswith("COPY --from=build /opt/venv") for line in final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    installs = " ".join(line for line in all_stages[0] if line.startswith("RUN "))
    assert f'".[{EXTRA_OF[dockerfile]}]"' in installs
    assert not any(line.startswith("RUN ") and "pip" in line for line in final)  # no compilers


@pytest.mark.parametrize("dockerfile", sorted(EXTRA_OF))
def test_the_files_the_image_points_at_are_copied_from_the_repo(dockerfile: str) -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = dict(copies(dockerfile))
    # What another stage builds (the camera page) is in the image at its COPY --from destination.
    built = [
        line.split()[-1]
        for line in stages(dockerfile)[-1]
        if line.startswith("COPY --from=") and not line.startswith("COPY --from=build ")
    ]
    for source in copied:
        assert (REPO / source).exists(), f"{dockerfile} copies missing {source}"
        assert not any(source.rstrip("/") == entry for entry in ignored), source
    for key, value in dockerfile_env(dockerfile).items():
        if value.startswith("/opt/edgecascade/") and value not in built:
            found = [
                REPO / src / value.removeprefix(dst.rstrip("/")).lstrip("/")
                for src, dst in copied.items()
                if f"{value}/".startswith(dst)
            ]
            assert found and found[0].exists(), f"{dockerfile}: {key}={value} is not in the image"


def test_the_gateway_image_runs_without_the_model_runtime() -> None:
    """The gateway extra has no numpy, OpenCV, LiteRT or cloud packages: the CLI still builds."""
    blocked = ["numpy", "cv2", "ai_edge_litert", "tflite_runtime", "fastapi", "sqlalchemy"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from edgecascade.cli import main\n"
        "for argv in (['gateway', '--help'], ['deploy', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, argv\n"
        "assert main(['models', 'eval']) == 2\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "models needs the edge extra (numpy is not installed)" in done.stderr
