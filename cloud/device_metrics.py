"""Per-device Prometheus metrics: each device's newest telemetry and its state, at scrape time.

One gauge family per figure, labelled ``site`` and ``device`` (bounded by the fleet, not by
time): what a Grafana panel or an alert rule needs without querying the API. The figures come
from the newest stored telemetry of each device (a gateway roll-up stores its newest sample as
that); ``edgecascade_device_online`` and ``edgecascade_device_last_seen_seconds`` from the devices
table. ``deploy/grafana/edgecascade-fleet.json`` charts them; a test checks that every metric it
uses is one of these.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from edgecascade.cloud.db.models import Device, Telemetry
from edgecascade.cloud.services import Services

LABELS = ["site", "device"]
# metric name suffix -> (help, how to read it from a telemetry payload)
FIGURES: dict[str, tuple[str, str]] = {
    "cpu_percent": ("CPU use, percent.", "cpu_percent"),
    "memory_percent": ("Memory use of the machine, percent.", "memory_percent"),
    "memory_rss_bytes": ("Resident memory of the agent, bytes.", "memory_rss_mb"),
    "temperature_celsius": ("CPU temperature.", "temperature_c"),
    "disk_percent": ("Use of the filesystem holding the data directory, percent.", "disk_percent"),
    "fps": ("Frames per second.", "fps"),
    "uptime_seconds": ("Since the machine booted.", "uptime_s"),
    "agent_uptime_seconds": ("Since the agent started.", "agent_uptime_s"),
    "inferences": ("Model runs since the agent started.", "inferences"),
    "latency_mean_milliseconds": ("Mean model run time, recent window.", "latency_mean_ms"),
    "outbox_messages": ("Messages waiting in the agent's disk outbox.", "queues"),
}


def _value(payload: dict[str, Any], field: str) -> float | None:
    if field == "queues":
        queues = payload.get("queues") or {}
        return float(sum(v for k, v in queues.items() if k.startswith("outbox.")))
    value = payload.get(field)
    if not isinstance(value, int | float):
        return None
    return float(value) * 1e6 if field == "memory_rss_mb" else float(value)


class DeviceCollector(Collector):
    """Reads the newest telemetry per device and the devices table at each scrape."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        newest = (
            select(Telemetry.site_id, Telemetry.device_id, func.max(Telemetry.ts).label("ts"))
            .group_by(Telemetry.site_id, Telemetry.device_id)
            .subquery()
        )
        query = select(Telemetry.site_id, Telemetry.device_id, Telemetry.payload).join(
            newest,
            (Telemetry.site_id == newest.c.site_id)
            & (Telemetry.device_id == newest.c.device_id)
            & (Telemetry.ts == newest.c.ts),
        )
        with self.services.sessions() as session:
            telemetry = session.execute(query).all()
            devices = session.execute(
                select(Device.site_id, Device.device_id, Device.status, Device.last_seen)
            ).all()
        families = {
            name: GaugeMetricFamily(f"edgecascade_device_{name}", text, labels=LABELS)
            for name, (text, _) in FIGURES.items()
        }
        for site, device, payload in telemetry:
            for name, (_, field) in FIGURES.items():
                value = _value(payload, field)
                if value is not None:
                    families[name].add_metric([site, device], value)
        yield from families.values()
        online = GaugeMetricFamily(
            "edgecascade_device_online", "1 while the device's state is online.", labels=LABELS
        )
        seen = GaugeMetricFamily(
            "edgecascade_device_last_seen_seconds",
            "Seconds since the newest message from the device.",
            labels=LABELS,
        )
        now = time.time()
        for site, device, status, last_seen in devices:
            online.add_metric([site, device], 1.0 if status == "online" else 0.0)
            seen.add_metric([site, device], max(0.0, now - last_seen))
        yield online
        yield seen
