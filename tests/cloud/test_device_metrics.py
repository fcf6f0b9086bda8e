"""Per-device Prometheus metrics from stored telemetry, and the shipped Grafana dashboard uses
only metrics the cloud exposes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import inbound, serving
from tests.utils.factories import make_state, make_telemetry
from tests.utils.paths import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "edgecascade-fleet.json"


def scrape(settings: CloudSettings) -> dict[str, dict[tuple[str, ...], float]]:
    """``/metrics`` of a served app after storing two devices' telemetry: value by labels."""
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        services = app.state.services
        assert services.ingestor.wait_connected(10)
        now = time.time()
        items = [
            inbound("s1", "cam1", Kind.STATE, make_state(ts=now)),
            inbound("s1", "cam1", Kind.TELEMETRY, make_telemetry(ts=now - 20, cpu_percent=10.0)),
            inbound(
                "s1",
                "cam1",
                Kind.TELEMETRY,
                make_telemetry(
                    ts=now - 5,
                    cpu_percent=55.0,
                    disk_percent=61.0,
                    inferences=900,
                    latency_mean_ms=3.5,
                    uptime_s=9000.0,
                    agent_uptime_s=600.0,
                    queues={"outbox.result": 4, "outbox.escalation": 1, "other": 9},
                ),
            ),
            inbound("s2", "cam9", Kind.TELEMETRY, make_telemetry(ts=now, cpu_percent=7.0)),
        ]
        StoreWriter(services.engine, services.blobs).write(items)
        text = client.get("/metrics").text
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, {})  # a family exposed with no sample yet counts as exposed
        for sample in family.samples:
            key = tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def test_each_devices_newest_telemetry_is_a_labelled_gauge(
    cloud_settings: CloudSettings, broker: MosquittoBroker
) -> None:
    settings = cloud_settings.model_copy(update={"mqtt": broker.settings})
    metrics = scrape(settings)
    cam1, cam9 = ("device=cam1", "site=s1"), ("device=cam9", "site=s2")
    assert metrics["edgecascade_device_cpu_percent"] == {cam1: 55.0, cam9: 7.0}  # the newest
    assert metrics["edgecascade_device_disk_percent"] == {cam1: 61.0}  # cam9 sent none
    assert metrics["edgecascade_device_inferences"][cam1] == 900
    assert metrics["edgecascade_device_latency_mean_milliseconds"][cam1] == 3.5
    assert metrics["edgecascade_device_outbox_messages"][cam1] == 5  # outbox.* only
    assert metrics["edgecascade_device_memory_rss_bytes"][cam1] == 120e6
    assert metrics["edgecascade_device_online"][cam1] == 1.0
    assert metrics["edgecascade_device_agent_uptime_seconds"][cam1] == 600.0
    assert 0 <= metrics["edgecascade_device_last_seen_seconds"][cam1] < 60


def test_the_grafana_dashboard_charts_only_exposed_metrics(
    cloud_settings: CloudSettings, broker: MosquittoBroker
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for expr in exprs for name in re.findall(r"\bedgecascade_[a-z_]+", expr)}
    assert len(used) >= 12
    settings = cloud_settings.model_copy(update={"mqtt": broker.settings})
    exposed = set(scrape(settings))
    # Counters are exposed with _total; PromQL names them so too.
    missing = {name for name in used if name not in exposed and f"{name}_total" not in exposed}
    assert not missing, f"the dashboard charts metrics the cloud does not expose: {missing}"
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


def test_the_dashboard_file_is_where_the_docs_say() -> None:
    assert DASHBOARD.is_file() and "edgecascade-fleet.json" in (REPO / "README.md").read_text()
    assert Path(DASHBOARD).stat().st_size < 64 * 1024
