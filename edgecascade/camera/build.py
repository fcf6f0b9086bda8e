"""``edgecascade camera build``: ``web/camera/`` -> a directory the cloud (or the launcher) serves.

A reproducible build, not a committed bundle: LiteRT.js ships its runtime as two WebAssembly
builds of about 9 MB each, too large for the repository. ``package-lock.json`` pins every npm
package; ``npm ci`` installs exactly those, ``node build.mjs`` bundles the page with esbuild and
copies the WebAssembly files beside it. Needs Node.js and npm (Debian ``nodejs`` + ``npm``) and the
npm registry (or a mirror npm is configured for) the first time.

Several processes (parallel tests) may ask for the same build: one builds under a file lock, the
rest wait and find it done; the output directory is replaced in one rename.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent.parent.parent / "web" / "camera"
INPUTS = ("package-lock.json", "build.mjs", "index.html", "camera.css", "src")


class CameraBuildError(EdgeCascadeError):
    """The camera page could not be built (no Node.js, npm failed, no source checkout)."""


def _newest(paths: list[Path]) -> float:
    times = [p.stat().st_mtime for path in paths for p in [path, *path.rglob("*")] if p.exists()]
    return max(times, default=0.0)


def _run(command: list[str], cwd: Path) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise CameraBuildError(f"{command[0]!r} is not installed: apt-get install nodejs npm")
    done = subprocess.run(
        [tool, *command[1:]], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise CameraBuildError(f"{' '.join(command)} failed ({done.returncode}): {tail}")


def build(out: Path | None = None, source: Path = SOURCE) -> Path:
    """Build the page into ``out`` (default ``web/camera/dist``) unless it is newer than every
    input; returns the directory."""
    if not (source / "package-lock.json").exists():
        raise CameraBuildError(f"no camera page source at {source}: run from a source checkout")
    out = (out or source / "dist").resolve()
    with open(source / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = source / "node_modules" / ".package-lock.json"
        if not installed.exists() or installed.stat().st_mtime < _newest(
            [source / "package-lock.json"]
        ):
            logger.info("npm ci in %s", source)
            _run(["npm", "ci", "--no-audit", "--no-fund"], source)
        stamp = out / "index.html"
        inputs = [source / name for name in INPUTS] + [installed]
        if not stamp.exists() or stamp.stat().st_mtime < _newest(inputs):
            logger.info("building the camera page into %s", out)
            _run(["node", "build.mjs", str(out)], source)
    return out
