"""``edgecascade camera launch``: the browser camera page as a device, in headless chromium.

The conformance suite's ``--agent-cmd``: it reads the connection from the ``EC_CONFORMANCE_*``
variables (flags override them), builds the page if needed, serves it and the model on a private
loopback port, turns the frames folder into a fake camera film and opens the page in headless
chromium (``--use-fake-device-for-media-stream``, ``--use-file-for-fake-video-capture``, camera
permission granted) with the settings as URL query parameters. It runs until it is stopped
(SIGTERM or SIGINT: the page's connection closes and the broker publishes its will) or the page
reports a problem (exit 3). Everything it starts is in its process group, which the suite kills.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from edgecascade.camera.build import build
from edgecascade.camera.video import images_in, write_y4m
from edgecascade.shared.errors import EdgeCascadeError

logger = logging.getLogger(__name__)

ENV = "EC_CONFORMANCE_"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PAGE_PARAMS = ("ws", "site", "device", "username", "password", "gateway", "prefix")


class _PageHandler(SimpleHTTPRequestHandler):
    """The built page, plus ``/model.tflite`` and ``/model.json`` from the model's path and
    ``/signing-key.pem``, the public key model offers are signed with (if any)."""

    def __init__(self, *args: Any, model: Path, key: Path | None, **kwargs: Any) -> None:
        self.model, self.key = model, key
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        name = path.split("?", 1)[0]
        if name == "/model.tflite":
            return str(self.model)
        if name == "/model.json":
            return str(self.model.with_suffix(".json"))
        if name == "/signing-key.pem":
            return str(self.key) if self.key is not None else "/nonexistent"
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def serve(page: Path, model: Path, key: Path | None = None) -> ThreadingHTTPServer:
    """Serve ``page``, ``model`` and ``key`` on a free loopback port, in a daemon thread."""
    handler = partial(_PageHandler, directory=str(page), model=model, key=key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="camera-page", daemon=True).start()
    return server


def page_url(base: str, settings: dict[str, str]) -> str:
    """The page's URL with its settings as query parameters (empty ones left out)."""
    return f"{base}/?{urlencode({k: v for k, v in settings.items() if v})}"


def chromium_args(film: Path) -> list[str]:
    return [*CHROMIUM_ARGS, *FAKE_CAMERA, f"--use-file-for-fake-video-capture={film}"]


def _settings(args: argparse.Namespace) -> dict[str, str]:
    values = {
        name: getattr(args, name) or os.environ.get(ENV + name.upper(), "")
        for name in ("site", "device", "username", "password", "gateway", "prefix")
    }
    values["ws"] = args.ws or os.environ.get(ENV + "WS_URL", "")
    interval = os.environ.get(ENV + "TELEMETRY_INTERVAL_S")
    confirm = os.environ.get(ENV + "CONFIRM_S")
    for key, value in (("telemetry", interval), ("confirm", confirm)):
        if value:
            values[key] = value
    values["fps"] = "10"  # a film, not a phone: keep the suite's checks fed (--param fps=N)
    values.update(args.param or {})
    missing = [name for name in ("ws", "site", "device") if not values.get(name)]
    if missing:
        names = ", ".join(f"--{n} or {ENV}{'WS_URL' if n == 'ws' else n.upper()}" for n in missing)
        raise EdgeCascadeError(f"the camera launcher needs {names}")
    return values


def _public_key(args: argparse.Namespace, tmp: Path) -> Path | None:
    """The model signing key's PEM file: ``--key``, ``$EC_CONFORMANCE_MODEL_PUBLIC_KEY`` or the
    PEM text of ``$EC_CONFORMANCE_MODEL_PUBLIC_KEY_PEM``; None: the page refuses every offer."""
    path = args.key or os.environ.get(ENV + "MODEL_PUBLIC_KEY")
    if path:
        return Path(path)
    text = os.environ.get(ENV + "MODEL_PUBLIC_KEY_PEM")
    if not text:
        return None
    (tmp / "signing-key.pem").write_text(text)
    return tmp / "signing-key.pem"


def run(args: argparse.Namespace) -> int:
    """Serve, open the page and wait until stopped; 3 if the page reports a problem."""
    from playwright.sync_api import sync_playwright

    settings = _settings(args)
    model = Path(args.model or os.environ.get(ENV + "MODEL", "")).resolve()
    if model.suffix != ".tflite" or not model.is_file():
        raise EdgeCascadeError(
            f"model {str(model)!r} is not a .tflite file (--model or {ENV}MODEL)"
        )
    frames = Path(args.frames or os.environ.get(ENV + "FRAMES", ""))
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise EdgeCascadeError("no chromium on PATH: apt-get install chromium (or --chromium)")
    page_dir = build()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="ec-camera-") as tmp:
        film = Path(args.video) if args.video else write_y4m(images_in(frames), Path(tmp) / "f.y4m")
        server = serve(page_dir, model, _public_key(args, Path(tmp)))
        url = page_url(f"http://127.0.0.1:{server.server_port}", settings)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=chromium_args(film))
            context = browser.new_context(permissions=["camera"])
            page = context.new_page()
            page.on("console", lambda msg: logger.info("page: %s", msg.text))
            page.goto(url)
            logger.info("camera page open for %s/%s", settings["site"], settings["device"])
            problem = ""
            while not stop.wait(0.5) and not problem:
                problem = page.evaluate(
                    "document.getElementById('problem').hidden ? '' : "
                    "document.getElementById('problem').textContent"
                )
            if problem:
                logger.error("the camera page reports: %s", problem)
            context.close()  # the websocket closes: the broker publishes the page's will
            browser.close()
        server.shutdown()
        server.server_close()
    return 3 if problem else 0
