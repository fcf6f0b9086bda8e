"""Response bodies of the detection routes (``/api/detections``): the rows of the ``detections``
table and their counts per label over time."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Source = Literal["edge", "cloud"]


class DetectionOut(BaseModel):
    """One stored box: the edge's (of a result) or the cloud's (of its verdict)."""

    result_id: str = Field(description="The edge result the box belongs to, or judges.")
    source: Source
    position: int = Field(description="Place in its answer, best first (0).")
    escalation_id: str | None = Field(description="The cloud's: the escalation it judged.")
    site: str
    device: str
    captured_at: float = Field(description="The result's capture time, Unix seconds.")
    model_name: str
    model_version: str
    label: str
    score: float
    box: tuple[float, float, float, float] = Field(
        description="x0, y0, x1, y1 in pixels of the frame its source saw."
    )
    zone: str | None
    frame_width: int | None = Field(description="Of the frame the box is in, when known.")
    frame_height: int | None


class DetectionPage(BaseModel):
    """One page of boxes, ordered by capture time, result, source, position."""

    items: list[DetectionOut]
    total: int = Field(description="Boxes matching the filters, over all pages.")
    limit: int
    offset: int


class CountPoint(BaseModel):
    start: float = Field(description="Start of the bucket, Unix seconds.")
    counts: dict[str, int] = Field(description="Boxes per label captured in the bucket.")
    total: int


class DetectionCounts(BaseModel):
    """Boxes per label in time buckets of ``bucket_s`` over ``[since, until)``, by the time
    their frames were captured."""

    since: float
    until: float
    bucket_s: float
    labels: list[str] = Field(description="Every label counted, most boxes first.")
    points: list[CountPoint]
