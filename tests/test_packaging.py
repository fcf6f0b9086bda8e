"""The wheel installs one top-level package, ``edgecascade``; the components live under it.

The repository keeps its top-level folders (``shared/``, ``edge_agent/``, ``gateway/``,
``cloud/``, ``modelzoo/``); ``edgecascade/<name>`` links to each, so the source tree, mypy and
the wheel all see ``edgecascade.<name>``, and nothing generic such as ``shared`` or ``cloud``
lands in site-packages where another distribution could own the same name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
COMPONENTS = ("shared", "edge_agent", "gateway", "cloud", "modelzoo")

_PROBE = """
import importlib, sys
for name in ("shared.codec", "edge_agent.agent", "gateway.forwarder", "cloud.app", "modelzoo"):
    module = importlib.import_module("edgecascade." + name)
    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)
for bare in ("shared", "edge_agent", "gateway", "cloud", "modelzoo"):
    try:
        importlib.import_module(bare)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"a bare top-level {bare!r} is importable")
print("ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*PIP, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True,
        cwd=out,
    )
    (built,) = out.glob("edgecascade-*.whl")
    return built


def test_the_wheel_has_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == {"edgecascade"}
    for component in COMPONENTS:
        assert f"edgecascade/{component}/__init__.py" in names
    assert "edgecascade/cloud/migrations/script.py.mako" in names
    assert "edgecascade/cloud/dashboard/static/index.html" in names


def test_a_fresh_venv_imports_the_components_only_through_the_namespace(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    # Nothing from the source tree: only the wheel and, below, the dependencies.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *PIP,
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        env=env,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies come from the test's own environment, after the venv's own packages; a
    # path in a .pth file is not a site directory, so the editable install's finder stays out.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [str(python), "-c", _PROBE, site], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "ok"
    cli = subprocess.run(
        [str(python), "-m", "edgecascade", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert "usage: edgecascade" in cli.stdout
