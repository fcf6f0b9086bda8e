"""The Alerts page in a real browser (Debian's chromium via Playwright) against the served API: the
firing count (on the page and on the nav link), the firing and resolved alerts, and the rules in
force. A screenshot goes to a temporary folder named on the terminal."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from edgecascade.cloud.alerts.config import AlertKind, AlertRule, RuleSet
from edgecascade.cloud.alerts.evaluator import AlertEvaluator
from edgecascade.cloud.alerts.rulestore import store_rules
from edgecascade.cloud.db.models import TrainingRun
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import ApiClient, inbound
from tests.dashboard.conftest import SCREENSHOTS
from tests.utils.factories import make_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def screenshots(pytestconfig: pytest.Config) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="edgecascade-dashboard-"))
    pytestconfig.stash[SCREENSHOTS] = folder
    return folder


def seed_alerts(services: Services) -> None:
    """Two cameras offline (firing) and a failed training run that has since left the window."""
    now = time.time()
    writer = StoreWriter(services.engine, services.blobs)
    for device in ("cam-1", "cam-2"):
        state = make_state(status="offline", ts=now - 600)
        writer.write([inbound("s1", device, Kind.STATE, state)])
    with services.sessions() as db:
        db.add(
            TrainingRun(
                id="run-9",
                site_id="s1",
                state="failed",
                trigger="test",
                metrics={},
                reason="out of memory",
                log="",
                created_at=now - 4000,
                finished_at=now - 3700,
            )
        )
        db.commit()
    rules = [
        AlertRule(name="offline", kind=AlertKind.OFFLINE, threshold=300),
        AlertRule(name="training", kind=AlertKind.TRAINING_FAILED, window_s=3600),
    ]
    settings = services.settings.model_copy(
        update={"alerts": services.settings.alerts.model_copy(update={"rules": rules})}
    )
    evaluator = AlertEvaluator(services.engine, settings)
    evaluator.evaluate(now - 200)  # the run failed 3500 s before: in the window, fires
    evaluator.evaluate(now)  # now out of it: resolved; the cameras are still offline
    with services.sessions() as db:
        store_rules(db, RuleSet(rules=rules), "test", now)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_alerts_page_shows_the_firing_count_and_list(
    client: ApiClient, tab: Page, screenshots: Path
) -> None:
    seed_alerts(client.services)
    tab.goto(f"{client.base_url}/dashboard/#/alerts")
    tab.fill("#token", client.token("viewer"))
    tab.click("#login")
    tab.wait_for_selector("#alerts-firing-table tbody tr[data-state='firing']")

    assert tab.inner_text("#alerts-firing .value") == "2"
    assert tab.inner_text("#nav a[data-page='alerts']") == "Alerts (2)"
    firing = tab.locator("#alerts-firing-table tbody tr")
    assert firing.count() == 2
    texts = sorted(firing.nth(i).inner_text() for i in range(2))
    assert "agent s1/cam-1 offline for 600 s" in texts[0]
    assert "agent s1/cam-2 offline for 600 s" in texts[1]
    resolved = tab.locator("#alerts-resolved-table tbody tr[data-state='resolved']")
    assert resolved.count() == 1
    assert "training run run-9 of site s1 failed: out of memory" in resolved.inner_text()
    assert tab.locator("#alerts-rules tbody tr").count() == 2
    assert "Rules from the api" in tab.inner_text("#alerts-channels")
    tab.screenshot(path=screenshots / "alerts.png", full_page=True)
