"""Prometheus metrics of one cloud process, served at ``/metrics``.

Each app has its own registry (tests build several apps in one process). HTTP requests are
counted and timed per route template (``/api/escalations/{msg_id}/frame``, not per id, so the
label set stays bounded); the ingest's counters are read from it at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgecascade.cloud.services import Services


class IngestCollector(Collector):
    """The ingest's own counters (:meth:`cloud.ingest.Ingestor.stats`), when it runs."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        ingestor = self.services.ingestor
        if ingestor is None:
            return
        stats = ingestor.stats()
        yield CounterMetricFamily(
            "edgecascade_ingest_messages_received", "MQTT messages received.", stats.received
        )
        yield CounterMetricFamily(
            "edgecascade_ingest_rows_stored", "Rows stored (a gateway batch is many).", stats.stored
        )
        yield CounterMetricFamily(
            "edgecascade_ingest_rows_duplicate",
            "Rows already stored: replays, changing nothing.",
            stats.duplicates,
        )
        rejected = CounterMetricFamily(
            "edgecascade_ingest_messages_rejected",
            "Messages refused, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.rejected_by_reason.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily(
            "edgecascade_ingest_queue", "Messages received, not yet committed.", stats.queued
        )
        yield GaugeMetricFamily(
            "edgecascade_ingest_connected", "1 while connected to the broker.", int(stats.connected)
        )


class RetentionCollector(Collector):
    """The blob store's frames (bytes, as of the last purge pass) and what retention purged."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        purger = self.services.retention
        if purger is None:
            return
        if purger.frame_bytes is not None:
            yield GaugeMetricFamily(
                "edgecascade_blob_frame_bytes",
                "Escalation frames in the blob store, bytes (as of the last purge pass).",
                purger.frame_bytes,
            )
        purged = CounterMetricFamily(
            "edgecascade_retention_purged", "Rows or frames purged, by kind.", labels=["kind"]
        )
        for kind, count in sorted(purger.totals.items()):
            purged.add_metric([kind], count)
        yield purged


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count and time every request by method, route template and status."""
    requests = Counter(
        "edgecascade_http_requests",
        "HTTP requests handled.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "edgecascade_http_request_seconds",
        "Time to answer an HTTP request.",
        ["method", "route"],
        registry=registry,
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        requests.labels(request.method, template, str(response.status_code)).inc()
        latency.labels(request.method, template).observe(time.perf_counter() - start)
        return response
