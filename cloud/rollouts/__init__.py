"""Staged rollouts: canary, widening, and automatic rollback on measured regressions.

A rollout offers a registered model to the devices of a site in stages (percentages of the
targets, e.g. 10, 50, 100). The targets' current model is the *baseline*: it must be in the
registry, because rolling back means offering it again. Every ``rollouts.interval_s`` the
controller looks at each running rollout:

- the devices' acks (``model_acks``): too many ``failed`` -> roll back;
- quality against the baseline (since the rollout began; the baseline also over
  ``baseline_lookback_s`` before it), from what the fleet reports: the share of
  escalations the cloud disagrees with (``verdicts``), the escalation rate and the median invoke
  time (``results``). A regression beyond ``criteria`` -> roll back, with the figures as the
  reason. Nothing is judged on fewer than ``min_verdicts`` / ``min_results`` samples;
- otherwise, once the stage has run ``stage_min_s``, every device offered has applied the model
  and both models have enough verdicts to compare, the next stage's devices get the offer;
  after the last stage the rollout is ``completed``.

An operator can pause a running rollout (the controller leaves it alone: nothing widens, nothing
is judged, no automatic rollback) and resume it (the stage's clock starts again), or roll it back
while it runs or is paused.

Rolling back offers the baseline manifest (under :func:`~cloud.rollouts.decide.rollback_id`) to
every device that was offered the new model; the rollout is ``rolled_back`` once they all report
it applied. State changes are conditional updates (``WHERE state = ... AND stage = ...``), so two
controllers (replicas) never both act on one transition; offers are idempotent on the device.

The parts: ``decide.py`` the states and the pure decision, ``plan.py`` a request checked and
turned into a row, ``store.py`` the SQL, ``controller.py`` the I/O around them. Refusals are
:class:`~cloud.errors.RolloutError` subclasses; the API maps them to status codes.
"""

from __future__ import annotations

from edgecascade.cloud.errors import RolloutConflict, RolloutError, RolloutInvalid, RolloutNotFound
from edgecascade.cloud.rollouts.controller import RolloutController
from edgecascade.cloud.rollouts.decide import RolloutState, rollback_id, stage_devices
from edgecascade.cloud.rollouts.plan import RolloutRequest
from edgecascade.cloud.rollouts.store import newest_acks

__all__ = [
    "RolloutConflict",
    "RolloutController",
    "RolloutError",
    "RolloutInvalid",
    "RolloutNotFound",
    "RolloutRequest",
    "RolloutState",
    "newest_acks",
    "rollback_id",
    "stage_devices",
]
