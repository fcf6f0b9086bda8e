"""The camera page's static routes under hostile paths: traversal (plain, encoded, doubled),
NUL, very long and odd names never reach a file outside the page's directory and never get a
5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecascade.cloud.app import create_app
from edgecascade.cloud.camera_settings import CameraSection
from edgecascade.cloud.settings import CloudSettings
from tests.cloud.conftest import serving
from tests.fuzz.strategies import SCALE
from tests.utils.paths import EDGE_MODEL_FP32

SECRET = "not-for-the-camera-page"
PIECES = st.sampled_from(
    [
        "..",
        "%2e%2e",
        "%2E%2E%2F",
        "..%2f",
        "%252e%252e",
        "secret.txt",
        "index.html",
        "wasm",
        "model.tflite",
        "model.json",
        "%00",
        "\\..\\",
        "",
        ".",
        "~",
        "a" * 300,
    ]
)


def test_no_path_leaves_the_page_directory_or_fails(tmp_path: Path) -> None:
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("camera page")
    (tmp_path / "secret.txt").write_text(SECRET)
    camera = CameraSection(dir=page, model=EDGE_MODEL_FP32)
    app = create_app(CloudSettings(data_dir=tmp_path / "c", camera=camera), start_ingest=False)

    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as client:

        @settings(
            max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(st.lists(PIECES, min_size=1, max_size=6))
        def check(parts: list[str]) -> None:
            response = client.get("/camera/" + "/".join(parts))
            assert response.status_code < 500, (parts, response.status_code)
            assert SECRET not in response.text, parts

        check()
