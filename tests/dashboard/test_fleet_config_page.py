"""Remote config on the dashboard in a real browser (Debian's chromium via Playwright) against the
served API: the fleet table's config column (in step, drift, refused), a device page's desired vs
reported versions with the refusal's reason and the desired settings, and the diagnostics button
(disabled for a viewer; an operator's click shows the API's answer: here, that this process has
no MQTT link). A screenshot goes to a temporary folder named on the terminal."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from edgecascade.cloud.db.fleet_models import ConfigReply, ConfigVersion
from edgecascade.cloud.db.models import Device
from edgecascade.cloud.services import Services
from tests.cloud.conftest import ApiClient
from tests.dashboard.conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e

REFUSAL = "escalation.class_thresholds names ['unicorn'], which are not labels of the model"


@pytest.fixture(scope="module")
def screenshots(pytestconfig: pytest.Config) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="edgecascade-dashboard-"))
    pytestconfig.stash[SCREENSHOTS] = folder
    return folder


def seed(services: Services) -> None:
    """Three agents of s1: cam1 runs v1 (in step), cam2 refused v2, cam3 has yet to take v1."""
    now = time.time()
    with services.sessions() as session:
        for device, reported in (("cam1", 1), ("cam2", None), ("cam3", None)):
            session.add(
                Device(
                    site_id="s1",
                    device_id=device,
                    status="online",
                    role="agent",
                    first_seen=now,
                    last_seen=now,
                    config_version=reported,
                )
            )
        document = {"escalation": {"threshold": 0.4}}
        session.add(
            ConfigVersion(site_id="s1", document=document, created_by="ops", created_at=now)
        )
        session.commit()
        session.add(
            ConfigVersion(
                site_id="s1",
                devices=["cam2"],
                document={"escalation": {"class_thresholds": {"unicorn": 0.5}}},
                created_by="ops",
                created_at=now,
            )
        )
        session.add(
            ConfigReply(
                site_id="s1",
                device_id="cam2",
                version=2,
                status="error",
                error=REFUSAL,
                received_at=now,
            )
        )
        session.commit()


def login(page: Page, client: ApiClient, role: str, hash_: str) -> None:
    page.goto(f"{client.base_url}/dashboard/{hash_}")
    page.fill("#token", client.token(role))
    page.click("#login")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_config_drift_and_diagnostics_on_the_pages(
    client: ApiClient, tab: Page, screenshots: Path
) -> None:
    seed(client.services)
    login(tab, client, "viewer", "#/fleet")
    tab.wait_for_selector("#fleet-table tbody tr[data-device=cam3][data-config]")
    row = "#fleet-table tbody tr[data-device={}]"
    assert tab.get_attribute(row.format("cam1"), "data-config") == "in-step"
    assert tab.get_attribute(row.format("cam2"), "data-config") == "refused"
    assert tab.get_attribute(row.format("cam3"), "data-config") == "drift"
    assert tab.inner_text(row.format("cam3") + " td.config-drift") == "start-up \u2192 v1"
    assert tab.inner_text(row.format("cam2") + " td.config-refused") == "refused v2 (runs start-up)"
    tab.screenshot(path=screenshots / "fleet-config.png", full_page=True)

    tab.goto(f"{client.base_url}/dashboard/#/device/s1/cam2")
    tab.wait_for_selector("#config-state")
    assert "refused" in tab.inner_text("#config-state")
    assert "2" in tab.inner_text("#config-desired")
    assert "start-up settings" in tab.inner_text("#config-reported")
    assert REFUSAL in tab.inner_text("#config-error")
    assert "unicorn" in tab.inner_text("#config-settings")
    assert tab.is_disabled("#diagnostics-run")

    tab.click("#logout")
    login(tab, client, "operator", "#/device/s1/cam1")
    tab.wait_for_selector("#diagnostics-run:not([disabled])")
    assert "in step" in tab.inner_text("#config-state")
    tab.click("#diagnostics-run")
    tab.wait_for_selector("#diagnostics-error")
    assert "503: commands need the MQTT link" in tab.inner_text("#diagnostics-error")
    tab.screenshot(path=screenshots / "device-config.png", full_page=True)
