"""The camera page's fixtures: the built page, a site with a websockets listener and a gateway,
and a headless chromium whose camera plays a film of the repository's images."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

from edgecascade.brokers import MosquittoBroker
from edgecascade.camera.build import build
from edgecascade.camera.launch import CHROMIUM_ARGS, chromium_args
from edgecascade.gateway.forwarder import Gateway
from tests.utils.camera import WsSite, fashion_film, running_gateway, ws_site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def camera_page() -> Path:
    """The page built from web/camera/ (npm ci and esbuild the first time; later runs reuse it)."""
    return build()


@pytest.fixture
def camera_browser(playwright: Playwright, tmp_path: Path) -> Iterator[Browser]:
    """Headless chromium whose camera plays the Fashion-MNIST film, camera prompts accepted."""
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: apt-get install chromium (scripts/test does)")
    film = fashion_film(tmp_path / "film.y4m")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(film))
    yield browser
    browser.close()


@pytest.fixture
def plain_browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless chromium without a fake camera or its prompt accepted."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class CameraSite:
    site: WsSite
    cloud: MosquittoBroker
    gateway: Gateway


@pytest.fixture
def camera_site(tmp_path: Path) -> Iterator[CameraSite]:
    """The site broker (websockets too), a cloud broker and a real gateway between them."""
    site = ws_site(tmp_path / "site")
    cloud = MosquittoBroker(tmp_path / "cloud")
    with site.broker, cloud, running_gateway(site, cloud, tmp_path / "gateway") as gateway:
        yield CameraSite(site, cloud, gateway)
