"""Zones: the parts of a camera's view where detections count.

A camera watching a door also sees the street behind it; its detections there are noise. The
agent's ``zones`` (:class:`~edgecascade.edge_agent.settings.ZoneSettings`) are polygons with
corners as fractions of the frame's width and height, so the same settings hold at any
resolution. Each detection is reduced to one anchor point (its box centre, or the middle of its
bottom edge, where a person stands) and tested against the polygons (even-odd ray casting, plain
Python: at most a hundred boxes a frame):

- in an ``exclude`` zone: dropped, counted in ``excluded``;
- with ``include`` zones configured, outside all of them: dropped, counted in ``outside``;
- otherwise kept, with ``zone`` = the first include zone it lies in (None without include zones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edgecascade.edge_agent.settings import ZoneSettings
from edgecascade.shared.fields import DetectedObject

Point = tuple[float, float]


def inside(point: Point, polygon: Sequence[Point]) -> bool:
    """Whether ``point`` lies inside ``polygon`` (even-odd rule; a point on an edge may fall
    either way, as with any ray casting)."""
    x, y = point
    result = False
    j = len(polygon) - 1
    for i, (xi, yi) in enumerate(polygon):
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        j = i
    return result


def anchor_point(box: tuple[float, float, float, float], anchor: str) -> Point:
    x0, y0, x1, y1 = box
    return ((x0 + x1) / 2, (y0 + y1) / 2 if anchor == "center" else y1)


class ZoneFilter:
    """Applies one camera's zones to its detections (one thread: the agent's emit stage)."""

    def __init__(
        self,
        zones: Sequence[ZoneSettings],
        anchor: Literal["center", "bottom_center"] = "bottom_center",
    ) -> None:
        self.include = [(z.name, z.points) for z in zones if z.kind == "include"]
        self.exclude = [(z.name, z.points) for z in zones if z.kind == "exclude"]
        self.anchor = anchor
        self.excluded = 0  # dropped: anchor in an exclude zone
        self.outside = 0  # dropped: include zones configured, anchor in none of them

    def apply(
        self, detections: Sequence[DetectedObject], width: int, height: int
    ) -> list[DetectedObject]:
        """The detections that count in a ``width`` x ``height`` frame, each with its zone."""
        if not self.include and not self.exclude:
            return list(detections)
        kept = []
        for detection in detections:
            px, py = anchor_point(detection.box, self.anchor)
            point = (px / width, py / height)
            if any(inside(point, polygon) for _, polygon in self.exclude):
                self.excluded += 1
                continue
            if not self.include:
                kept.append(detection)
                continue
            zone = next((name for name, polygon in self.include if inside(point, polygon)), None)
            if zone is None:
                self.outside += 1
                continue
            kept.append(detection.model_copy(update={"zone": zone}))
        return kept
