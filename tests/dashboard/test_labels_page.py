"""The Labels page in a real browser (Debian's chromium via Playwright) against the served API:
the queue shows each disagreement's frame and both answers; an operator confirms the cloud's
label or picks another and the frame leaves the queue with the person's label final; a viewer's
buttons are disabled."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.cloud.conftest import ApiClient
from tests.utils.judged import store_judged

pytestmark = pytest.mark.e2e


def open_labels(page: Page, client: ApiClient, role: str) -> None:
    page.goto(f"{client.base_url}/dashboard/#/labels")
    page.fill("#token", client.token(role))
    page.click("#login")
    page.wait_for_selector("#labels-queue .shot img")


def final(client: ApiClient, msg_id: str) -> tuple[str, str]:
    items = client.get("/api/escalations").json()["items"]
    item = next(i for i in items if i["msg_id"] == msg_id)
    return item["final_label"], item["label_source"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_operator_confirms_or_corrects_and_a_viewer_only_looks(
    client: ApiClient, tab: Page
) -> None:
    confirmed = store_judged(client.services, edge="cat", cloud="dog", captured_at=2000.0)
    corrected = store_judged(client.services, edge="dog", cloud="bird", captured_at=1000.0)

    open_labels(tab, client, "viewer")
    assert tab.locator("#labels-queue .shot").count() == 2
    assert tab.is_visible("#labels-note")
    assert tab.locator("#labels-queue button:enabled, #labels-queue select:enabled").count() == 0

    tab.click("#logout")
    open_labels(tab, client, "operator")
    assert "2 disagreement(s)" in tab.inner_text("#labels-count")
    first = tab.locator(f"#labels-queue .shot[data-id='{confirmed.msg_id}']")
    assert "edge: cat" in first.inner_text() and "cloud: dog" in first.inner_text()
    assert tab.evaluate("document.querySelector('#labels-queue .shot img').naturalWidth") > 0
    first.locator("button.confirm").click()
    tab.wait_for_function("document.querySelectorAll('#labels-queue .shot').length === 1")
    assert final(client, confirmed.msg_id) == ("dog", "human")

    second = tab.locator(f"#labels-queue .shot[data-id='{corrected.msg_id}']")
    second.locator("select.pick").select_option("cat")
    second.locator("button.relabel").click()
    tab.wait_for_function("document.querySelectorAll('#labels-queue .shot').length === 0")
    assert final(client, corrected.msg_id) == ("cat", "human")
    assert "0 disagreement(s)" in tab.inner_text("#labels-count")
