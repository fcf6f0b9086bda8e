"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against the demo's
topology started here: brokers, the served cloud, a re-inference worker, a gateway and two
cameras replaying real frames through the committed edge model.

Each page must show the demo's own data; a live update must arrive without a reload; a rollout
is started, paused, resumed and rolled back from the page and the camera really goes back to the
baseline model; a viewer's controls are disabled and the API refuses the viewer's writes; an
admin uploads a model from the page (and a bad upload is refused with its reason).
Screenshots of every page go to a temporary folder, named on the terminal.
"""

from __future__ import annotations

import io
import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from edgecascade.brokers import free_port
from edgecascade.demo import Demo, DemoPlan
from edgecascade.processes import environment
from edgecascade.shared.runtime.card import load_card_for
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS
from tests.utils.mqtt import wait_until
from tests.utils.paths import CLOUD_MODEL, EDGE_MODEL, EVAL_SAMPLE

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo topology, running for the whole module (the cameras loop for 5 minutes)."""
    plan = DemoPlan(
        devices=2,
        duration=300,
        fps=4,
        site="site1",
        model=EDGE_MODEL,
        cloud_model=CLOUD_MODEL,
        frames=EVAL_SAMPLE,
        threshold=0.9,
        workdir=tmp_path_factory.mktemp("demo"),
        http_port=free_port(),
    )
    running = Demo(plan)
    running.out = io.StringIO()
    try:
        # A quarter of the sure frames go up as audit samples: the live accuracy has data soon.
        with environment({"EC_AGENT_ESCALATION__AUDIT_FRACTION": "0.25"}):
            running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def screenshots(pytestconfig: pytest.Config) -> Path:
    """A temporary folder, named at the end of the run (tests/dashboard/conftest.py)."""
    folder = Path(tempfile.mkdtemp(prefix="edgecascade-dashboard-"))
    pytestconfig.stash[SCREENSHOTS] = folder
    return folder


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: apt-get install chromium (scripts/test does)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) that fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def log_in(page: Page, demo: Demo, token: str) -> None:
    page.goto(f"{demo.api}/dashboard/")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_selector("#fleet-table tbody tr")


def api_get(demo: Demo, path: str) -> Any:
    request = urllib.request.Request(
        demo.api + path, headers={"Authorization": f"Bearer {demo.admin_token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_data(demo: Demo) -> None:
    """Telemetry from both cameras and some verdicts, so every page has something to show."""

    def ready() -> bool:
        fleet = api_get(demo, "/api/dashboard/fleet")["items"]
        cameras = [d for d in fleet if d["role"] == "agent"]
        verdicts = api_get(demo, "/api/escalations?judged=true&limit=1")["total"]
        return len(cameras) == 2 and all(d["fps"] for d in cameras) and verdicts >= 3

    assert wait_until(ready, timeout=90), demo.group.log_tail("cloud")


def test_every_page_shows_the_demos_live_data(demo: Demo, page: Page, screenshots: Path) -> None:
    wait_for_data(demo)
    log_in(page, demo, demo.token)
    assert page.inner_text("#whoami") == "demo (viewer)"

    # Fleet: both cameras and the gateway online, the cameras' model, fps and escalation rate.
    rows = page.locator("#fleet-table tbody tr")
    page.wait_for_selector("#fleet-table tbody tr[data-device=cam2][data-status=online]")
    assert rows.count() == 3
    cam1 = page.locator("#fleet-table tbody tr[data-device=cam1]")
    assert "fashion-edge 1.0.0" in cam1.inner_text()
    assert "%" in cam1.locator(".escalation-rate").inner_text()
    page.select_option("#filter-role", "gateway")
    page.wait_for_function("document.querySelectorAll('#fleet-table tbody tr').length === 1")
    assert page.locator("#fleet-table tbody tr").get_attribute("data-device") == "gateway"
    page.select_option("#filter-role", "")
    page.wait_for_selector("#fleet-table tbody tr[data-device=cam1]")

    # A live update arrives without a reload: the marker set on this window survives it.
    page.evaluate("window.__sameDocument = true")
    before = int(page.get_attribute("#live", "data-results") or 0)
    page.wait_for_function(f"Number(document.querySelector('#live').dataset.results) > {before}")
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=screenshots / "fleet.png", full_page=True)

    # Device: telemetry charts with points, counters, recent results of this camera.
    cam1.click()
    page.wait_for_selector("#recent-results tbody tr")
    page.wait_for_function("Number(document.querySelector('#chart-fps').dataset.points) >= 3")
    for chart in ("cpu", "fps", "latency", "outbox"):
        assert int(page.get_attribute(f"#chart-{chart}", "data-points") or 0) >= 3, chart
    assert page.inner_text("#device-title") == "Device site1 / cam1"
    assert "sent.result" in page.inner_text("#device-counters")
    assert "fashion-edge 1.0.0" in page.inner_text("#recent-results")
    page.screenshot(path=screenshots / "device.png", full_page=True)

    # Escalations: real frames with the edge's label and confidence and the cloud's verdict.
    page.click("nav a[data-page=escalations]")
    page.wait_for_selector("#gallery .shot img")
    shot = page.locator("#gallery .shot").first
    assert "edge: " in shot.inner_text() and "%" in shot.inner_text()
    assert page.locator("#gallery .shot .badge.agree, #gallery .shot .badge.disagree").count() > 0
    width = page.evaluate("document.querySelector('#gallery .shot img').naturalWidth")
    assert width > 0  # the frame decoded in the browser
    stored = api_get(demo, "/api/escalations?limit=1")["total"]
    assert stored > 0
    # A class the gallery offers (it lists the classes of the frames it shows: with audit samples
    # the newest 48 need not include the oldest escalation's).
    label = page.eval_on_selector(
        "#esc-class", "s => [...s.options].map(o => o.value).find(v => v) || ''"
    )
    assert label, "the class filter offers no class"
    page.select_option("#esc-class", label)
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery .edge')].every("
        f"e => e.textContent.startsWith('edge: {label} '))"
    )
    page.select_option("#esc-agree", "false")
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery .shot')].every(s => s.classList.contains("
        "'disagree'))"
    )
    page.select_option("#esc-class", "")
    page.select_option("#esc-agree", "")
    page.wait_for_selector("#gallery .shot img")
    # Classification cameras only: no boxes to draw or count, no detection panel.
    page.wait_for_selector("#detections-panel", state="attached")
    assert page.is_hidden("#detections-panel")
    assert page.locator("#gallery svg.boxes").count() == 0
    page.screenshot(path=screenshots / "escalations.png", full_page=True)

    # Models: both registered versions.
    page.click("nav a[data-page=models]")
    page.wait_for_selector("#models-table tbody tr[data-model='fashion-edge/1.1.0']")
    assert page.locator("#models-table tbody tr").count() == 2
    page.screenshot(path=screenshots / "models.png", full_page=True)

    # Cascade health: what was stored, and fewer bytes up than sending every frame.
    page.click("nav a[data-page=health]")
    page.wait_for_selector("#health-results .value")
    health = api_get(demo, "/api/dashboard/health?window_s=900&bucket_s=10")["totals"]
    shown = int(page.inner_text("#health-results .value"))
    assert 0 < shown <= health["results"]
    assert health["uplink_bytes"] < health["every_frame_bytes"]
    ratio = float(page.inner_text("#health-ratio .value"))
    assert 0 < ratio < 1
    assert int(page.get_attribute("#chart-bytes", "data-points") or 0) > 0
    assert "biased" in page.inner_text("#health-disagreement .label")
    page.screenshot(path=screenshots / "health.png", full_page=True)


def test_the_health_page_shows_the_live_accuracy_estimate(demo: Demo, page: Page) -> None:
    def audited() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api_get(demo, "/api/accuracy?site=site1")["items"]
        return [i for i in items if i["audited"] >= 3]

    assert wait_until(lambda: bool(audited()), timeout=90), api_get(demo, "/api/accuracy")
    log_in(page, demo, demo.token)
    page.click("nav a[data-page=health]")
    row = page.locator("#accuracy-table tbody tr[data-model='fashion-edge/1.0.0']")
    page.wait_for_function(
        "Number(document.querySelector("
        "\"#accuracy-table tr[data-model='fashion-edge/1.0.0'] .audited\")?.textContent) >= 3"
    )
    estimate = row.locator(".estimate").inner_text()
    assert estimate.endswith(" %") and 0 <= float(estimate[:-2]) <= 100
    low, high = (float(x.strip(" %")) for x in row.locator(".interval").inner_text().split(" to "))
    assert low <= float(estimate[:-2]) <= high
    assert "biased" in row.locator(".biased").inner_text()
    assert "biased" in page.inner_text("#accuracy-note")


def rollout_state(demo: Demo, rollout_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api_get(demo, f"/api/rollouts/{rollout_id}")
    return body


def camera_models(demo: Demo) -> dict[str, str | None]:
    fleet = api_get(demo, "/api/dashboard/fleet")["items"]
    return {d["device"]: d["model_version"] for d in fleet if d["role"] == "agent"}


def test_a_rollout_is_started_paused_resumed_and_rolled_back_from_the_page(
    demo: Demo, page: Page, screenshots: Path
) -> None:
    wait_for_data(demo)
    assert camera_models(demo) == {"cam1": "1.0.0", "cam2": "1.0.0"}
    log_in(page, demo, demo.create_token("ops", "operator"))
    page.click("nav a[data-page=models]")
    page.wait_for_selector("#models-table tbody tr[data-model='fashion-edge/1.1.0']")
    page.select_option("#rollout-model", "fashion-edge/1.1.0")
    page.fill("#rollout-canary", "50")
    page.fill("#rollout-stages", "100")
    page.fill("#rollout-stage-min", "600")  # the canary stage holds while the test steers it
    page.click("#rollout-start")
    card = page.locator(".rollout").first
    page.wait_for_selector(".rollout[data-state=running]")
    rollout_id = card.get_attribute("data-id")
    assert rollout_id is not None
    (canary,) = rollout_state(demo, rollout_id)["offered"]

    # The canary camera downloads, verifies and applies the new model (through the gateway).
    try:
        page.wait_for_function(
            f"document.querySelector('.rollout[data-id=\"{rollout_id}\"] .cohort')"
            ".textContent.includes('applied')",
            timeout=90_000,
        )
    except PlaywrightTimeout:
        pytest.fail(
            f"not applied: {rollout_state(demo, rollout_id)}\n"
            f"{demo.group.log_tail(canary)}\n{demo.group.log_tail('gateway')}"
        )
    assert wait_until(lambda: camera_models(demo)[canary] == "1.1.0", timeout=60)
    page.screenshot(path=screenshots / "rollout-running.png", full_page=True)

    card.locator("button.pause").click()
    page.wait_for_selector(f".rollout[data-id='{rollout_id}'][data-state=paused]")
    assert rollout_state(demo, rollout_id)["reason"].startswith("paused by ops")
    card = page.locator(f".rollout[data-id='{rollout_id}']")
    card.locator("button.resume").click()
    page.wait_for_selector(f".rollout[data-id='{rollout_id}'][data-state=running]")

    card.locator("button.pause").click()  # and rolled back while paused
    page.wait_for_selector(f".rollout[data-id='{rollout_id}'][data-state=paused]")
    card.locator("button.rollback").click()
    # rolling_back may last less than a page refresh: the canary still has 1.0.0 in a slot.
    shown = page.wait_for_selector(
        f".rollout[data-id='{rollout_id}']:is([data-state=rolling_back], [data-state=rolled_back])"
    )
    assert shown is not None
    try:
        page.wait_for_selector(
            f".rollout[data-id='{rollout_id}'][data-state=rolled_back]", timeout=90_000
        )
    except PlaywrightTimeout:
        pytest.fail(
            f"not rolled back: {rollout_state(demo, rollout_id)}\n{demo.group.log_tail(canary)}"
        )
    final = rollout_state(demo, rollout_id)
    assert final["reason"] == "aborted by ops: from the dashboard"
    assert final["offered"] == [canary]  # the other camera was never offered it
    assert final["device_states"][canary] in ("rollback applied", "rollback committed")
    assert wait_until(lambda: camera_models(demo)[canary] == "1.0.0", timeout=60)
    page.screenshot(path=screenshots / "rollout-rolled-back.png", full_page=True)


def test_a_viewer_sees_disabled_controls_and_is_refused_by_the_api(
    demo: Demo, page: Page, screenshots: Path
) -> None:
    page.goto(f"{demo.api}/dashboard/")
    page.fill("#token", "ec_not-a-token")
    page.click("#login")
    page.wait_for_function("document.querySelector('#login-error').textContent.includes('401')")
    assert page.is_visible("#page-login") and not page.is_visible("#nav")

    log_in(page, demo, demo.token)
    page.click("nav a[data-page=models]")
    page.wait_for_selector("#models-table tbody tr")
    assert page.is_visible("#role-note")
    assert page.is_disabled("#rollout-start")
    assert page.is_disabled("#upload-form button[type=submit]")
    for button in page.locator(".rollout button").all():
        assert button.is_disabled()
    page.screenshot(path=screenshots / "viewer-models.png", full_page=True)

    # The page's own API call, made anyway with the viewer's token: refused, nothing created.
    before = len(api_get(demo, "/api/rollouts")["items"])
    refused = page.evaluate(
        """async () => {
            const r = await fetch("/api/rollouts", {method: "POST", headers: {
                "Authorization": "Bearer " + sessionStorage.getItem("edgecascade-token"),
                "Content-Type": "application/json"},
                body: JSON.stringify({model_name: "fashion-edge", model_version: "1.1.0",
                                      site: "site1"})});
            return [r.status, (await r.json()).detail];
        }"""
    )
    assert refused[0] == 403
    assert "viewer" in refused[1] and "operator" in refused[1]
    assert len(api_get(demo, "/api/rollouts")["items"]) == before


def test_an_admin_uploads_a_model_from_the_page(
    demo: Demo, page: Page, screenshots: Path, tmp_path: Path
) -> None:
    card = load_card_for(CLOUD_MODEL)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(card.labels) + "\n")
    short = tmp_path / "short-labels.txt"
    short.write_text("\n".join(card.labels[:-1]) + "\n")
    log_in(page, demo, demo.admin_token)
    page.click("nav a[data-page=models]")
    page.wait_for_selector("#models-table tbody tr")
    form = page.locator("#upload-form")

    # Labels that do not match the model's outputs: refused with the reason, nothing registered.
    form.locator("input[name=file]").set_input_files(CLOUD_MODEL)
    form.locator("input[name=name]").fill("fashion-cloud")
    form.locator("input[name=version]").fill("2.0.0")
    form.locator("input[name=labels]").set_input_files(short)
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#message.error")
    refusal = page.inner_text("#message")
    assert "upload refused: 422" in refusal and "10 outputs" in refusal and "9 labels" in refusal
    assert page.locator("#models-table tbody tr[data-model='fashion-cloud/2.0.0']").count() == 0

    form.locator("input[name=labels]").set_input_files(labels)
    form.locator("input[name=preprocess]").fill(card.preprocess.model_dump_json())
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#models-table tbody tr[data-model='fashion-cloud/2.0.0']")
    assert "registered fashion-cloud 2.0.0" in page.inner_text("#message")
    registered = api_get(demo, "/api/models/fashion-cloud/2.0.0")
    assert registered["manifest"]["labels"] == card.labels
    assert registered["size_bytes"] == CLOUD_MODEL.stat().st_size
    page.screenshot(path=screenshots / "models-uploaded.png", full_page=True)
