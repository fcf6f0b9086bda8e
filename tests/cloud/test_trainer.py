"""The trainer end to end on a real database and broker, with a torch-free fine-tune stand-in
(tests/utils/training.py): a child that passes the gates is registered and rolled out (offers on
the broker), one that fails them is recorded rejected with no rollout, and a trainer SIGKILLed
mid-run leaves a failed run, no model and no rollout, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.db.models import ModelVersion, Rollout, TrainingRun
from edgecascade.cloud.rollouts import RolloutController
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.training import store
from edgecascade.cloud.training.service import Trainer
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.topics import Kind, ModelSub, topic_filter
from tests.utils.mqtt import Collector, wait_until
from tests.utils.training import SITE, export_verdicts, register_parent, seed_site

FAKE = [sys.executable, "-m", "tests.utils.training"]


@pytest.fixture
def settings(cloud_settings: CloudSettings, broker: MosquittoBroker) -> CloudSettings:
    out = CloudSettings.model_validate(
        {
            **cloud_settings.model_dump(),
            "mqtt": broker.settings.model_dump(),
            "train": {"min_holdout": 5, "heartbeat_s": 0.2, "stale_after_s": 1.0, "poll_s": 0.2},
        }
    )
    generate_keys(out.signing_key_path.parent)
    return out


@pytest.fixture
def site(settings: CloudSettings) -> Iterator[Services]:
    services = open_services(settings, start_ingest=False)
    with services.sessions() as session:
        parent = register_parent(session, settings)
        seed_site(session, services.blobs, parent, verdicts=80)
    yield services
    services.close()


def trainer(services: Services, settings: CloudSettings) -> Iterator[Trainer]:
    rollouts = RolloutController(services.engine, settings)
    rollouts.begin(loop=False)
    try:
        yield Trainer(
            services.engine, settings, services.blobs, export_verdicts, rollouts, "t1", FAKE
        )
    finally:
        rollouts.stop()


def queued(services: Services) -> str:
    with services.sessions() as session:
        return store.queue_run(session, SITE, "test", 0.0).id


def test_a_child_that_passes_the_gates_is_registered_and_rolled_out(
    site: Services, settings: CloudSettings
) -> None:
    offers = topic_filter(Kind.MODEL, sub=ModelSub.OFFER, prefix=settings.mqtt.prefix)
    run_id = queued(site)
    with Collector(settings.mqtt, offers) as collector:
        for job in trainer(site, settings):
            assert job.run_next() == run_id
        with site.sessions() as session:
            run = session.get_one(TrainingRun, run_id)
            assert run.state == "shipped", run.reason + run.log
        assert wait_until(lambda: len(collector.messages) >= 1)
    with site.sessions() as session:
        run = session.get_one(TrainingRun, run_id)
        assert run.reason.startswith("all gates passed")
        assert run.dataset_size == 80 and run.snapshot_id and run.rollout_id
        assert run.metrics["after"]["holdout_accuracy"] == 0.9
        assert "fake fine-tune starting" in run.log
        child = session.get_one(ModelVersion, (run.parent_name, run.child_version))
        assert child.card is not None and child.card["lineage"]["parent"].endswith("@1.0.0")
        assert session.get_one(Rollout, run.rollout_id).model_version == run.child_version


def test_a_child_the_gates_refuse_is_rejected_and_not_shipped(
    site: Services, settings: CloudSettings
) -> None:
    strict = settings.model_copy(
        update={"train": settings.train.model_copy(update={"max_regression_points": -1.0})}
    )
    run_id = queued(site)
    for job in trainer(site, strict):
        job.run_next()
    with site.sessions() as session:
        run = session.get_one(TrainingRun, run_id)
        assert run.state == "rejected" and run.reason.startswith("regression gate")
        assert run.rollout_id is None and run.child_version is None
        assert session.scalar(select(func.count()).select_from(Rollout)) == 0
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_a_sigkilled_trainer_leaves_a_failed_run_and_the_next_one_completes(
    site: Services, settings: CloudSettings, tmp_path: Path
) -> None:
    env = {**os.environ, "FAKE_TRAIN_SLEEP": "60"}
    process = subprocess.Popen(
        [*FAKE, "serve", settings.model_dump_json()], env=env, cwd=Path(__file__).parents[2]
    )
    first = queued(site)

    def log_of(run_id: str) -> str:
        with site.sessions() as session:
            return session.get_one(TrainingRun, run_id).log

    try:
        assert wait_until(lambda: "fake fine-tune starting" in log_of(first), timeout=60)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    second = queued(site)
    for job in trainer(site, settings):
        stale: list[str] = []

        def collect(job: Trainer = job, stale: list[str] = stale) -> bool:
            stale.extend(job.fail_stale())
            return bool(stale)

        assert wait_until(collect, timeout=10)
        assert stale == [first]
        assert job.run_next() == second
    with site.sessions() as session:
        failed = session.get_one(TrainingRun, first)
        assert failed.state == "failed"
        assert failed.reason.startswith("trainer stopped mid-run (heartbeat")
        assert failed.rollout_id is None and failed.child_version is None
        assert session.get_one(TrainingRun, second).state == "shipped"
        rollouts = session.scalars(select(Rollout)).all()
        assert (
            len(rollouts) == 1
            and rollouts[0].model_version == session.get_one(TrainingRun, second).child_version
        )
