"""A rollout request checked and turned into the new rollout's row, step by step.

Each step refuses with the reason, as a :class:`~cloud.errors.RolloutError` subclass the API
answers with its status code: stages and criteria that cannot be used, targets that do not match,
a fleet that runs the model already or whose model (the baseline) is not registered.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from edgecascade.cloud.db.models import Device, ModelVersion, Rollout
from edgecascade.cloud.errors import RolloutConflict, RolloutInvalid
from edgecascade.cloud.fleet.tags import parse
from edgecascade.cloud.rollouts.decide import RolloutState, stage_devices
from edgecascade.cloud.settings import RolloutCriteria
from edgecascade.shared.fields import NO_NUL
from edgecascade.shared.topics import ID_PATTERN


class RolloutRequest(BaseModel):
    """What to roll out, where, how fast, and with which limits."""

    model_name: str = Field(pattern=ID_PATTERN)
    model_version: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    site: str = Field(pattern=ID_PATTERN)
    devices: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        None, description="Only these devices of the site (default: every camera of it)."
    )
    tags: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        pattern=NO_NUL,
        description="Only the site's cameras whose tags match this expression, e.g. "
        "'zone:north and not model:old' (not with devices).",
    )
    stages: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(
        [10.0, 50.0, 100.0], min_length=1, max_length=20, description="Percent of the targets."
    )
    criteria: dict[str, float] = Field({}, description="Overrides of rollouts.criteria.")

    @field_validator("tags")
    @classmethod
    def _parses(cls, tags: str | None) -> str | None:
        if tags is not None:
            parse(tags)  # a TagSyntaxError (a ValueError) names the position: a 422
        return tags


def criteria_of(request: RolloutRequest, defaults: RolloutCriteria) -> RolloutCriteria:
    """The request's stages checked, and its criteria over the configured ones."""
    stages = request.stages
    if any(not 0 < p <= 100 for p in stages) or stages != sorted(set(stages)):
        raise RolloutInvalid(f"stages must increase within (0, 100], got {stages}")
    try:
        return RolloutCriteria.model_validate({**defaults.model_dump(), **request.criteria})
    except ValueError as exc:
        raise RolloutInvalid(f"invalid criteria: {exc}") from exc


def tagged(
    request: RolloutRequest, devices: Sequence[Device], tags: Mapping[str, Sequence[str]]
) -> list[Device]:
    """The cameras whose tags (by device id) match the request's expression (all without
    one)."""
    if request.tags is None:
        return list(devices)
    if request.devices is not None:
        raise RolloutInvalid("target either a device list or a tag expression, not both")
    expression = parse(request.tags)  # it parsed when the request was validated
    return [d for d in devices if expression.matches(frozenset(tags.get(d.device_id, ())))]


def check_targets(request: RolloutRequest, devices: Sequence[Device]) -> None:
    """The cameras found for the request are the ones it names (or some, when it names none)."""
    if not devices:
        raise RolloutInvalid(f"no cameras of site {request.site!r} match")
    missing = set(request.devices or ()) - {d.device_id for d in devices}
    if missing:
        raise RolloutInvalid(f"unknown devices of {request.site}: {sorted(missing)}")


def baseline_sha(devices: Sequence[Device], model: ModelVersion) -> str:
    """The model most targets run now: what the new one is compared with and rolled back to."""
    running = Counter(d.model_sha256 for d in devices if d.model_sha256)
    if not running:
        raise RolloutConflict("the targets have not reported their model yet")
    sha256 = running.most_common(1)[0][0]
    if sha256 == model.sha256:
        raise RolloutConflict(f"the targets run {model.name} {model.version} already")
    return sha256


def unregistered(devices: Sequence[Device], sha256: str) -> RolloutConflict:
    """The refusal of a baseline that is not in the registry: nothing to roll back to."""
    d = next(d for d in devices if d.model_sha256 == sha256)
    return RolloutConflict(
        f"the targets run {d.model_name} {d.model_version} ({sha256[:12]}), which is not in the "
        "registry: register it first, so the rollout can roll back to it"
    )


def new_rollout(
    request: RolloutRequest,
    model: ModelVersion,
    baseline: ModelVersion,
    devices: Sequence[Device],
    criteria: RolloutCriteria,
    created_by: str,
    now: float,
) -> Rollout:
    """The row of a rollout starting at ``now``: its first stage offered."""
    rollout_id = f"ro-{uuid.uuid4().hex[:12]}"
    targets = spread(rollout_id, [d.device_id for d in devices])
    return Rollout(
        id=rollout_id,
        site_id=request.site,
        targets=targets,
        model_name=model.name,
        model_version=model.version,
        sha256=model.sha256,
        baseline_name=baseline.name,
        baseline_version=baseline.version,
        baseline_sha256=baseline.sha256,
        stages=request.stages,
        stage=0,
        stage_started_at=now,
        criteria=criteria.model_dump(),
        state=RolloutState.RUNNING.value,
        reason="",
        evaluation={},
        offered=stage_devices(targets, request.stages[0]),
        created_at=now,
        updated_at=now,
        created_by=created_by,
    )


def spread(rollout_id: str, devices: list[str]) -> list[str]:
    """A stable spread: the order the stages take devices in, different for every rollout."""
    return sorted(
        devices, key=lambda name: hashlib.sha256(f"{rollout_id}/{name}".encode()).digest()
    )
