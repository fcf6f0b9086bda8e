"""The Training page in a real browser (Debian's chromium via Playwright) against the served API:
the runs with their before → after figures and decisions, one run's log, the lineage of the
registered versions (parent → child); a viewer's "Train now" is disabled, an admin's queues a
run that then shows as queued. A screenshot goes to a temporary folder named on the terminal."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from edgecascade.cloud.db.models import ModelVersion, Site, TrainingRun
from edgecascade.cloud.registry import Upload, card_of, register
from edgecascade.cloud.services import Services
from edgecascade.cloud.training.store import RunState
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.runtime.card import Lineage, LineageMetrics
from tests.cloud.conftest import ApiClient
from tests.dashboard.conftest import SCREENSHOTS
from tests.utils.paths import EDGE_MODEL_FP32
from tests.utils.training import SITE, register_parent

pytestmark = pytest.mark.e2e

SHIPPED_REASON = "ship: holdout accuracy 0.5000 -> 0.9000 (+40.00 points on 20 samples)"
REJECTED_REASON = "improvement gate: holdout accuracy 0.5000 -> 0.4500 (-5.00 points)"


@pytest.fixture(scope="module")
def screenshots(pytestconfig: pytest.Config) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="edgecascade-dashboard-"))
    pytestconfig.stash[SCREENSHOTS] = folder
    return folder


def register_child(services: Services, parent: ModelVersion) -> ModelVersion:
    """The committed fp32 edge model as a fine-tune of ``parent``, with its lineage."""
    card = card_of(parent)
    lineage = Lineage(
        parent=f"{parent.name}@{parent.version}",
        parent_sha256=parent.sha256,
        dataset_snapshot_id="snap-1",
        dataset_size=120,
        train_samples=96,
        holdout_samples=24,
        original_eval_dataset="fashion eval",
        before=LineageMetrics(holdout_accuracy=0.5, original_accuracy=0.8),
        after=LineageMetrics(holdout_accuracy=0.9, original_accuracy=0.79),
        command="edgecascade cloud train",
    )
    upload = Upload(
        EDGE_MODEL_FP32.read_bytes(),
        parent.name,
        "ft-1",
        card.labels,
        card.preprocess.model_dump(mode="json"),
        lineage=lineage,
    )
    with services.sessions() as session:
        return register(session, services.settings, upload, created_by="trainer")


def metrics(holdout_after: float, original_after: float) -> dict[str, object]:
    return {
        "before": {"holdout_accuracy": 0.5, "original_accuracy": 0.8},
        "after": {"holdout_accuracy": holdout_after, "original_accuracy": original_after},
        "train_samples": 96,
        "holdout_samples": 24,
    }


def seed_runs(services: Services) -> tuple[ModelVersion, ModelVersion]:
    """Site s1, its parent and fine-tuned child, a shipped run and a rejected one."""
    now = time.time()
    generate_keys(services.settings.signing_key_path.parent)
    with services.sessions() as session:
        session.add(Site(id=SITE, first_seen=now, last_seen=now))
        session.commit()
        parent = register_parent(session, services.settings)
    child = register_child(services, parent)
    common = {"site_id": SITE, "parent_name": parent.name, "parent_version": parent.version}
    with services.sessions() as session:
        session.add_all(
            [
                TrainingRun(
                    id="tr-shipped",
                    state=RunState.SHIPPED.value,
                    trigger="min_new_samples: 120 new verdicts",
                    child_version=child.version,
                    snapshot_id="snap-1",
                    dataset_size=120,
                    metrics=metrics(0.9, 0.79),
                    reason=SHIPPED_REASON,
                    log="fake fine-tune starting\nregistered child\n",
                    created_at=now - 600,
                    started_at=now - 590,
                    finished_at=now - 500,
                    rollout_id="ro-1",
                    **common,
                ),
                TrainingRun(
                    id="tr-rejected",
                    state=RunState.REJECTED.value,
                    trigger="by hand (ops)",
                    snapshot_id="snap-2",
                    dataset_size=150,
                    metrics=metrics(0.45, 0.8),
                    reason=REJECTED_REASON,
                    log="fake fine-tune starting\n",
                    created_at=now - 300,
                    started_at=now - 290,
                    finished_at=now - 200,
                    **common,
                ),
            ]
        )
        session.commit()
    return parent, child


def open_training(page: Page, client: ApiClient, role: str, hash_: str = "#/training") -> None:
    page.goto(f"{client.base_url}/dashboard/{hash_}")
    page.fill("#token", client.token(role))
    page.click("#login")
    page.wait_for_selector("#training-runs tbody tr")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_runs_lineage_and_train_now(client: ApiClient, tab: Page, screenshots: Path) -> None:
    parent, child = seed_runs(client.services)

    open_training(tab, client, "viewer", "#/training/tr-shipped")
    shipped = tab.locator("#training-runs tr[data-id='tr-shipped']")
    rejected = tab.locator("#training-runs tr[data-id='tr-rejected']")
    assert shipped.get_attribute("data-state") == "shipped"
    assert f"{parent.name}@{parent.version} → {child.version}" in shipped.inner_text()
    assert "50.0 % → 90.0 %" in shipped.locator(".holdout").inner_text()
    assert "80.0 % → 79.0 %" in shipped.locator(".original").inner_text()
    assert "ro-1" in shipped.inner_text() and "snap-1 (120)" in shipped.inner_text()
    assert rejected.locator(".reason").inner_text() == REJECTED_REASON
    assert "50.0 % → 45.0 %" in rejected.locator(".holdout").inner_text()
    assert "registered child" in tab.inner_text("#training-log")

    node = tab.locator(f"#training-lineage li li .node[data-model='{child.name}@{child.version}']")
    assert node.get_attribute("data-parent") == f"{parent.name}@{parent.version}"
    assert "dataset 120 samples" in node.inner_text() and "50.0 % → 90.0 %" in node.inner_text()
    tab.screenshot(path=screenshots / "training.png", full_page=True)

    assert tab.is_visible("#training-note")
    assert tab.is_disabled("#train-now")

    tab.click("#logout")
    open_training(tab, client, "admin")
    tab.wait_for_selector("#training-note", state="hidden")  # the admin's first load is in
    assert tab.input_value("#train-site") == SITE
    # A site the API does not know (gone since the page loaded): its 422 message is shown.
    tab.evaluate(
        "const select = document.querySelector('#train-site');"
        "select.append(new Option('gone', 'gone')); select.value = 'gone';"
        "document.querySelector('#train-now').click();"
    )
    tab.wait_for_selector("#message.error")
    assert "422: no site 'gone'" in tab.inner_text("#message")
    tab.wait_for_function("document.querySelector('#train-site').value === 's1'")
    tab.click("#train-now")
    tab.wait_for_selector("#training-runs tr[data-state='queued']")
    assert "queued for site s1" in tab.inner_text("#message")
    queued = tab.locator("#training-runs tr[data-state='queued']")
    assert "by hand" in queued.inner_text()
    assert tab.locator("#training-runs tbody tr").count() == 3
