"""Benchmark implementations, registered by name in an explicit dict."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from edgecascade.benchmarks.cascade import bench_cascade
from edgecascade.benchmarks.cloud import bench_cloud
from edgecascade.benchmarks.codec import bench_codec
from edgecascade.benchmarks.detect import bench_detect
from edgecascade.benchmarks.edge import bench_edge
from edgecascade.benchmarks.gateway import bench_gateway
from edgecascade.benchmarks.load import bench_load
from edgecascade.benchmarks.loop import bench_loop
from edgecascade.benchmarks.outbox import bench_outbox
from edgecascade.benchmarks.soak import bench_soak

REGISTRY: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cascade": bench_cascade,
    "cloud": bench_cloud,
    "codec": bench_codec,
    "detect": bench_detect,
    "edge": bench_edge,
    "gateway": bench_gateway,
    "load": bench_load,
    "loop": bench_loop,
    "outbox": bench_outbox,
    "soak": bench_soak,
}
