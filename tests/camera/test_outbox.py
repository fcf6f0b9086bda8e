"""The page's outbox survives a closed tab: results the gateway never acknowledged are kept in
IndexedDB and sent when the page is opened again (the browser's counterpart of the agent's disk
outbox). The page runs first with no gateway on the site (it holds its results), its tab is
closed, the gateway starts, and the page opened again in the same browser profile sends the
first tab's results, which reach the cloud broker."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import Browser, BrowserContext

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import ResultBatchMessage
from edgecascade.shared.topics import Kind, Topic
from tests.camera.conftest import TIMEOUT_MS
from tests.cloud.conftest import serving
from tests.utils.camera import DEVICE, MODEL, running_gateway, ws_site
from tests.utils.mqtt import Collector, wait_until


def forwarded_ids(cloud: Collector) -> set[str]:
    ids: set[str] = set()
    for message in cloud.messages:
        parsed = Topic.parse(message.topic)
        item = decode(parsed, message.payload).message
        if parsed.kind is Kind.RESULT and parsed.device == DEVICE:
            ids.add(item.msg_id)
        elif isinstance(item, ResultBatchMessage):
            ids.update(entry.result.msg_id for entry in item.results if entry.device == DEVICE)
    return ids


def pending_ids(
    context: BrowserContext, base: str, query: dict[str, str], at_least: int
) -> set[str]:
    """Open the page, wait until it holds ``at_least`` unacknowledged results, close the tab."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/camera/?{urlencode(query)}")
    size = "window.edgecascadeCamera?.link.pending.size ?? 0"
    assert wait_until(lambda: page.evaluate(size) >= at_least, timeout=40)
    assert page.evaluate("window.edgecascadeCamera.link.durable") is True
    ids = set(page.evaluate("[...window.edgecascadeCamera.link.pending.keys()]"))
    page.wait_for_timeout(300)  # IndexedDB's writes of the newest ones
    page.close()
    return ids


def test_results_a_closed_tab_held_are_sent_when_the_page_opens_again(
    camera_page: Path, camera_browser: Browser, tmp_path: Path
) -> None:
    site = ws_site(tmp_path / "site")
    cloud = MosquittoBroker(tmp_path / "cloud")
    settings = CloudSettings(
        data_dir=tmp_path / "cloud-app", camera={"dir": camera_page, "model": MODEL}
    )
    query = site.page_query(threshold="0", fps="5", confirm="2")
    with site.broker, cloud, serving(create_app(settings, start_ingest=False)) as base:
        context = camera_browser.new_context(permissions=["camera"])  # one profile: one IndexedDB
        held = pending_ids(context, base, query, at_least=5)  # no gateway: nothing acknowledged
        with (
            Collector(cloud.settings, "ec/v1/#", client_id="cloud") as up,
            running_gateway(site, cloud, tmp_path / "gateway"),
        ):
            page = context.new_page()
            page.goto(f"{base}/camera/?{urlencode(query)}")
            assert wait_until(lambda: held <= forwarded_ids(up), timeout=40), held - forwarded_ids(
                up
            )
            restored = page.evaluate("window.edgecascadeCamera.link.restored")
            assert restored >= len(held)
        context.close()
