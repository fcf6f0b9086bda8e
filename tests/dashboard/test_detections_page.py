"""Detections on the Escalations page in a real browser (Debian's chromium via Playwright) against
the served API: the edge's and the cloud's boxes are drawn over the frame in two colours where
they are, with a legend, and the boxes per label are charted over time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.cloud.conftest import ApiClient
from tests.utils.detections import box, store_detection_judged

pytestmark = pytest.mark.e2e


def client_box(tab: Page, selector: str) -> dict[str, Any]:
    found: dict[str, Any] = tab.eval_on_selector(
        selector,
        "el => { const r = el.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }",
    )
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_edges_and_the_clouds_boxes_are_drawn_on_the_frame(
    client: ApiClient, tab: Page
) -> None:
    now = time.time()
    # The edge found one face the cloud confirms and one it does not; the cloud found a second.
    judged = store_detection_judged(
        client.services,
        [box("face", 0.8, 4, 4, side=16), box("face", 0.6, 40, 2, side=10)],
        [box("face", 0.9, 5, 4, side=16), box("person", 0.7, 30, 20, side=20)],
        captured_at=now - 120,
    )
    pending = store_detection_judged(
        client.services, [box("face", 0.7, 8, 8)], None, captured_at=now - 60
    )

    tab.goto(f"{client.base_url}/dashboard/#/escalations")
    tab.fill("#token", client.token("viewer"))
    tab.click("#login")
    shot = f"#gallery .shot[data-id='{judged.msg_id}']"
    tab.wait_for_selector(f"{shot} rect.box.cloud")
    assert tab.locator(f"{shot} rect.box.edge").count() == 2
    assert tab.locator(f"{shot} rect.box.cloud").count() == 2
    strokes = {
        tab.get_attribute(f"{shot} rect.box.{source} >> nth=0", "stroke")
        for source in ("edge", "cloud")
    }
    assert len(strokes) == 2  # two colours
    text = tab.inner_text(shot)
    assert "edge: 2 box(es)" in text and "cloud: 2 box(es)" in text
    assert "precision 50 %" in text and "recall 50 %" in text and "disagree" in text
    assert tab.is_visible("#box-legend") and "cloud's boxes" in tab.inner_text("#box-legend")

    # The edge's best box is where it is on the frame: the 64x48 frame is shown contained in
    # the square image, so a pixel of it is min(w / 64, h / 48) pixels on the screen.
    tab.wait_for_function(f'document.querySelector("{shot} img").naturalWidth > 0')
    image = client_box(tab, f"{shot} img")
    scale = min(image["width"] / 64, image["height"] / 48)
    left = image["x"] + (image["width"] - 64 * scale) / 2
    top = image["y"] + (image["height"] - 48 * scale) / 2
    drawn = client_box(tab, f"{shot} rect.box.edge >> nth=0")
    near = 2.5  # screen pixels: rounding, and the 2-pixel outline if the box includes it
    assert abs(drawn["x"] - (left + 4 * scale)) <= near
    assert abs(drawn["y"] - (top + 4 * scale)) <= near
    assert abs(drawn["width"] - 16 * scale) <= near

    # The unjudged frame shows the edge's box only.
    unjudged = tab.locator(f"#gallery .shot[data-id='{pending.msg_id}']")
    assert unjudged.locator("rect.box.edge").count() == 1
    assert unjudged.locator("rect.box.cloud").count() == 0

    # Boxes per label over the last hour: both labels charted, edge and cloud boxes counted.
    tab.wait_for_function(
        "document.querySelector('#chart-detections').dataset.labels === 'face,person'"
    )
    assert int(tab.get_attribute("#chart-detections", "data-points") or 0) > 0
    # Drawn, not only computed: a line per label, with a size on the screen.
    assert tab.locator("#chart-detections path.line").count() == 2
    assert client_box(tab, "#chart-detections path.line >> nth=0")["width"] > 0
