"""Bad input on the camera page: a browser without WebAssembly SIMD, or without the camera
permission, gets a clear message on the page, and the page goes no further."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page, Playwright

from edgecascade.camera.launch import CHROMIUM_ARGS, serve
from tests.camera.conftest import CHROMIUM, TIMEOUT_MS
from tests.utils.camera import MODEL
from tests.utils.paths import EDGE_MODEL

QUERY = {"ws": "ws://127.0.0.1:9/", "site": "site1", "device": "cam1"}
# What a browser without WebAssembly SIMD answers: the page's own check (WebAssembly.validate on
# a module with a v128 instruction) sees false; every other module validates as before.
NO_SIMD = """
const validate = WebAssembly.validate;
WebAssembly.validate = (bytes) => !new Uint8Array(bytes).includes(0xfd) && validate(bytes);
"""
COUNT_CAMERA_CALLS = """
window.cameraCalls = 0;
const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (c) => { window.cameraCalls += 1; return gum(c); };
"""


@contextmanager
def served(page: Path, model: Path) -> Iterator[str]:
    server = serve(page, model)
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def base_url(camera_page: Path) -> Iterator[str]:
    with served(camera_page, MODEL) as url:
        yield url


@pytest.fixture
def fake_camera_no_prompt(playwright: Playwright) -> Iterator[Browser]:
    """A camera is there, but nobody accepts the permission prompt."""
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    yield browser
    browser.close()


def problem(page: Page) -> tuple[str, str]:
    box = page.locator("#problem")
    box.wait_for(state="visible", timeout=TIMEOUT_MS)
    return box.get_attribute("data-kind") or "", box.text_content() or ""


def test_without_wasm_simd_the_page_says_so_and_opens_no_camera(
    plain_browser: Browser, base_url: str
) -> None:
    context = plain_browser.new_context(permissions=["camera"])
    context.add_init_script(NO_SIMD + COUNT_CAMERA_CALLS)
    page = context.new_page()
    wasm: list[str] = []
    page.on(
        "request", lambda request: wasm.append(request.url) if "/wasm/" in request.url else None
    )
    page.goto(f"{base_url}/?{urlencode(QUERY)}")
    kind, text = problem(page)
    assert kind == "simd" and "WebAssembly SIMD" in text, text
    assert page.evaluate("window.cameraCalls") == 0 and not wasm


def test_without_camera_permission_the_page_says_so(
    fake_camera_no_prompt: Browser, base_url: str
) -> None:
    page = fake_camera_no_prompt.new_context().new_page()
    page.goto(f"{base_url}/?{urlencode(QUERY)}")
    kind, text = problem(page)
    assert kind == "camera" and "Camera permission was denied" in text, text


def test_a_bad_setting_is_named(plain_browser: Browser, base_url: str) -> None:
    page = plain_browser.new_context().new_page()
    page.goto(f"{base_url}/?{urlencode({**QUERY, 'threshold': '7'})}")
    kind, text = problem(page)
    assert kind == "settings" and 'threshold "7"' in text, text


def test_an_int8_input_model_is_named_with_what_to_serve_instead(
    camera_browser: Browser, camera_page: Path
) -> None:
    """LiteRT.js's tensors are float32, int32 or uint8: the int8 edge model cannot run."""
    with served(camera_page, EDGE_MODEL) as url:
        page = camera_browser.new_context(permissions=["camera"]).new_page()
        page.goto(f"{url}/?{urlencode(QUERY)}")
        kind, text = problem(page)
    assert kind == "start" and "fashion-edge" in text and "_fp32" in text, text
