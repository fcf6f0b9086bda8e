"""The learning loop's cloud side: training runs as rows, their triggers, and the trainer.

A run is a row of ``training_runs`` (:mod:`cloud.training.store`). It is queued by hand (the
API) or by a trigger (:mod:`cloud.training.trigger`, a thread of the cloud process that only
inserts rows), claimed by ``edgecascade cloud trainer`` (:mod:`cloud.training.service`, its own
process), and goes::

    queued -> running -> shipped     the gates passed, the child is registered, a rollout started
                      -> succeeded   the gates passed and the child is registered, no rollout
                      -> rejected    the gates said no (the reason names the gate and figures)
                      -> failed      anything else, with the reason; also a run whose trainer
                                     stopped (its heartbeat went stale)

What a run does is :mod:`cloud.training.runner`. Nothing here imports torch: the fine-tune is
``edgecascade cloud train`` in a subprocess.
"""

from __future__ import annotations
