"""What a policy of ``bench detect``'s topology run answered, read back from the cloud, and its
figures.

The cloud's API has every stored result (``/api/results``: frame id, escalated) and every
stored box (``/api/detections``: the edge's of a result, the cloud's of its verdict, both keyed
by the result's id). A frame's **final answer** is the cloud's boxes where it was escalated and
the verdict came back, the edge's otherwise. A frame the scene gate skipped has no result: the
camera's answer for it is still the last one it had (a gated camera keeps showing what it last
found), so it is scored with the previous frame's final answer, and counted in
``gated_fraction``. Bytes and latencies come from the wire (:mod:`.cascade_tap`), scored as
``bench cascade`` scores them (:func:`~edgecascade.benchmarks.cascade_score.score`); first
answer = the edge result, final = the verdict where there is one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.cascade_score import PolicyPoint, score
from edgecascade.benchmarks.cascade_tap import DeviceTraffic
from edgecascade.benchmarks.detect_metrics import Found, Truth
from edgecascade.benchmarks.detect_offline import figures
from edgecascade.shared.errors import EdgeCascadeError

if TYPE_CHECKING:
    from edgecascade.benchmarks.cascade_tap import WireTap
    from edgecascade.benchmarks.detect_topology import TopologyPolicy
    from edgecascade.demo import Demo

PAGE = 1000  # the API's largest page
SITE = "bench"


@dataclass
class StoredResult:
    """One stored result of a camera and the boxes stored with it."""

    result_id: str
    escalated: bool
    edge: list[Found] = field(default_factory=list)
    cloud: list[Found] = field(default_factory=list)


def _pages(demo: Demo, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = demo._get(f"{path}&limit={PAGE}&offset={len(items)}")
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            return items


def read_back(
    demo: Demo, devices: dict[str, str], stats: dict[str, dict[str, int]], timeout: float
) -> dict[str, dict[str, StoredResult]]:
    """Per camera, its stored results by frame id, once the cloud has stored each one the
    agent sent (raises naming the device whose results are still missing at ``timeout``)."""
    stored: dict[str, dict[str, StoredResult]] = {}
    for camera, device in devices.items():
        query = f"?site={SITE}&device={device}"
        deadline = time.monotonic() + timeout
        while (count := demo._count(f"/api/results{query}&limit=1")) < stats[device]["results"]:
            if time.monotonic() > deadline:
                raise EdgeCascadeError(
                    f"{device}: the cloud stored {count} of {stats[device]['results']} results "
                    f"within {timeout:g} s"
                )
            time.sleep(0.3)
        results = {
            r["msg_id"]: (r["frame_id"], StoredResult(r["msg_id"], r["escalated"]))
            for r in _pages(demo, f"/api/results{query}")
        }
        for box in _pages(demo, f"/api/detections{query}"):
            entry = results[box["result_id"]][1]
            found = Found(box["label"], box["score"], tuple(box["box"]))
            (entry.cloud if box["source"] == "cloud" else entry.edge).append(found)
        stored[camera] = dict(results.values())
    return stored


def merged(traffic: list[DeviceTraffic]) -> DeviceTraffic:
    """One policy's cameras' traffic as one device's."""
    total = DeviceTraffic()
    for t in traffic:
        total.answers.update(t.answers)
        total.verdicts.update(t.verdicts)
        for kind, size in t.uplink_bytes.items():
            total.uplink_bytes[kind] += size
        for kind, n in t.uplink_messages.items():
            total.uplink_messages[kind] += n
        total.uplinked_results += t.uplinked_results
    return total


def score_policy(
    policy: TopologyPolicy,
    document: dict[str, Any],
    stored: dict[str, dict[str, StoredResult]],
    tap: WireTap,
    stats: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The policy's figures: :func:`~.detect_offline.figures` on the final answers read back,
    with the wire's bytes and latencies."""
    traffic = merged([tap.device(policy.device(camera)) for camera in stored])
    agent: dict[str, int] = defaultdict(int)
    for device_stats in stats.values():
        for key, value in device_stats.items():
            agent[key] += value
    wire = score(PolicyPoint(policy.name, policy.family, policy.escalation), traffic, dict(agent))
    truth: list[list[Truth]] = []
    final: list[list[Found]] = []
    escalated: list[bool] = []
    held: dict[str, list[Found]] = defaultdict(list)  # each camera's last answer
    gated = judged = 0
    for frame in sorted(document["frames"], key=lambda f: (f["camera"], f["index"])):
        camera = frame["camera"]
        truth.append([Truth(o["label"], tuple(o["box"])) for o in frame["objects"]])
        result = stored[camera].get(frame["file"].split("/", 1)[1])
        up = result is not None and result.escalated and result.result_id in traffic.verdicts
        if result is None:
            gated += 1
        else:
            judged += up
            held[camera] = result.cloud if up else result.edge
        final.append(held[camera])
        escalated.append(result is not None and result.escalated)
    entry = figures(policy.name, policy.family, truth, final, escalated, wire["uplink_bytes"])
    entry["gated_fraction"] = gated / len(truth) if truth else None
    entry["verdicts_used"] = judged
    for key in ("escalation", "agent", "escalated", "verdicts", "verdicts_missing"):
        entry[key] = wire[key]
    for key in ("first_answer_ms", "final_answer_ms", "verdict_ms", "uplinked_results"):
        entry[key] = wire[key]
    for key in ("result_bytes", "frame_bytes", "other_uplink_bytes"):
        entry[key] = wire[key]
    entry["edge_threshold"] = policy.edge_threshold
    band = policy.band
    entry["gate_measure"] = None if band is None else band.measure
    if band is not None:
        entry["band"] = [band.low, band.high]
        entry["gate_threshold"] = band.gate
        entry["count_window"] = band.count_window
    return entry


def add_frame_ratio(policies: list[dict[str, Any]]) -> None:
    """Escalated frames' bytes as a fraction of cloud-only's (``bytes_ratio`` is all bytes)."""
    cloud = next(p for p in policies if p["family"] == "cloud-only")
    for entry in policies:
        reference = cloud["frame_bytes"]
        entry["frame_bytes_ratio"] = entry["frame_bytes"] / reference if reference else None
