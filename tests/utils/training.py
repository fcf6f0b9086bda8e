"""Training-run factories: a site with a trainable parent and verdicts, a SQL dataset exporter,
and a stand-in for ``edgecascade cloud train`` that needs no torch.

:func:`export_verdicts` writes the LOOP.md dataset format from stored escalations and verdicts
(the cloud's exporter has the same signature). :func:`fake_train` (``python -m
tests.utils.training``) answers like the real command: the committed fp32 edge model as the
child, with its card, lineage and ``report.json``; ``FAKE_TRAIN_AFTER`` sets the child's
held-out and original accuracies (``"0.9,0.8"``), ``FAKE_TRAIN_SLEEP`` makes it take a while.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecascade.cloud.blobs import BlobStore
from edgecascade.cloud.dataset import (
    DatasetFilters,
    DatasetManifest,
    LabelSource,
    Sample,
    TopEntry,
    sample_file,
    split_for,
    write_dataset,
)
from edgecascade.cloud.db.models import Device, Escalation, ModelVersion, Site, Verdict
from edgecascade.cloud.registry import Upload, card_of, register
from edgecascade.cloud.settings import CloudSettings
from edgecascade.shared.runtime.card import load_card_for
from tests.utils.paths import EDGE_MODEL, EDGE_MODEL_FP32

SITE = "s1"
CAMERAS = ("cam1", "cam2")


def register_parent(session: Session, settings: CloudSettings) -> ModelVersion:
    """The committed int8 edge model with its trainable source and weights."""
    card = load_card_for(EDGE_MODEL)
    assert card.trainable is not None
    upload = Upload(
        EDGE_MODEL.read_bytes(),
        card.name,
        card.version,
        card.labels,
        card.preprocess.model_dump(mode="json"),
        trainable=card.trainable,
        weights=(EDGE_MODEL.parent / card.trainable.weights).read_bytes(),
    )
    return register(session, settings, upload, created_by="test")


def seed_site(session: Session, blobs: BlobStore, parent: ModelVersion, verdicts: int) -> None:
    """Site ``s1``: two cameras running ``parent`` and ``verdicts`` escalations with a verdict."""
    now = time.time()
    session.add(Site(id=SITE, first_seen=now, last_seen=now))
    for camera in CAMERAS:
        session.add(
            Device(
                site_id=SITE,
                device_id=camera,
                status="online",
                role="agent",
                model_name=parent.name,
                model_version=parent.version,
                model_sha256=parent.sha256,
                first_seen=now,
                last_seen=now,
            )
        )
    labels = card_of(parent).labels
    ok, jpeg = cv2.imencode(".jpg", np.full((28, 28), 128, np.uint8))
    assert ok
    for i in range(verdicts):
        add_verdict(session, blobs, parent, labels, i, jpeg.tobytes(), now)
    session.commit()


def add_verdict(
    session: Session,
    blobs: BlobStore,
    parent: ModelVersion,
    labels: list[str],
    i: int,
    jpeg: bytes,
    now: float,
) -> None:
    msg_id = str(uuid.uuid4())
    device = CAMERAS[i % 2]
    path = f"{SITE}/{device}/{msg_id}.jpg"
    blobs.put(path, jpeg)
    edge, cloud = labels[i % len(labels)], labels[(i + i // 3) % len(labels)]
    common = {"site_id": SITE, "device_id": device, "result_id": msg_id}
    session.add(
        Escalation(
            msg_id=msg_id,
            frame_id=str(i),
            captured_at=now - 100 + i,
            received_at=now,
            model_name=parent.name,
            model_version=parent.version,
            edge_label=edge,
            edge_score=0.4,
            reason="low_confidence",
            blob_path=path,
            content_type="image/jpeg",
            width=28,
            height=28,
            **common,
        )
    )
    session.add(
        Verdict(
            escalation_id=msg_id,
            msg_id=str(uuid.uuid4()),
            created_at=now,
            worker_id="w1",
            model_name="fashion-cloud",
            model_version="1",
            model_sha256="0" * 64,
            label=cloud,
            label_index=labels.index(cloud),
            score=0.9,
            top=[{"index": labels.index(cloud), "label": cloud, "score": 0.9}],
            edge_model_name=parent.name,
            edge_model_version=parent.version,
            edge_label=edge,
            edge_score=0.4,
            agrees=edge == cloud,
            inference_ms=1.0,
            **common,
        )
    )


def export_verdicts(
    session: Session, blobs: BlobStore, filters: DatasetFilters, out: Path
) -> DatasetManifest:
    """The site's escalations with a verdict as a dataset (cloud labels, no soft targets)."""
    rows = session.execute(
        select(Escalation, Verdict)
        .join(Verdict, Verdict.escalation_id == Escalation.msg_id)
        .where(Escalation.site_id == filters.site)
    ).all()
    first = rows[0][0]
    labels = card_of(session.get_one(ModelVersion, (first.model_name, first.model_version))).labels
    items = []
    for escalation, verdict in rows:
        sample = Sample(
            id=escalation.msg_id,
            file=sample_file(verdict.label, escalation.msg_id),
            label=verdict.label,
            label_index=labels.index(verdict.label),
            label_source=LabelSource.CLOUD,
            cloud_top=[TopEntry.model_validate(entry) for entry in verdict.top],
            edge_label=escalation.edge_label,
            edge_score=escalation.edge_score,
            site=escalation.site_id,
            device=escalation.device_id,
            captured_at=escalation.captured_at,
            edge_model=f"{escalation.model_name}@{escalation.model_version}",
            cloud_model=f"{verdict.model_name}@{verdict.model_version}",
            split=split_for(escalation.msg_id),
        )
        items.append((sample, blobs.get(escalation.blob_path)))
    return write_dataset(out, labels=labels, items=items, filters=filters)


def fake_train(argv: list[str]) -> int:
    """``edgecascade cloud train``'s flags and output, without torch (see the module text)."""
    from edgecascade.cloud.dataset import read_dataset
    from edgecascade.cloud.training_gates import TrainingResult
    from edgecascade.modelzoo.finetune import Child, load_parent
    from edgecascade.shared.runtime.card import LineageMetrics
    from edgecascade.train_cli import add_train_parser, write_child

    root = argparse.ArgumentParser()
    add_train_parser(root.add_subparsers())
    args = root.parse_args(["train", *argv])
    sys.stdout.write("fake fine-tune starting\n")
    sys.stdout.flush()
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    holdout, original = (float(x) for x in os.environ.get("FAKE_TRAIN_AFTER", "0.9,0.8").split(","))
    parent = load_parent(args.parent)
    manifest, samples = read_dataset(args.dataset)
    held = sum(1 for s in samples if s.split == "holdout")
    result = TrainingResult(
        before=LineageMetrics(holdout_accuracy=0.5, original_accuracy=0.8),
        after=LineageMetrics(holdout_accuracy=holdout, original_accuracy=original),
        train_samples=len(samples) - held,
        holdout_samples=held,
        replay_samples_seen=0,
        original_eval_dataset="fake",
        epochs=args.epochs,
        seconds=0.0,
    )
    child = Child(EDGE_MODEL_FP32.read_bytes(), b"fake weights", result)
    args.out.mkdir(parents=True)
    report = write_child(args.out, parent.path, parent.card, manifest, child, args)
    sys.stdout.write(f"{report.decision.reason}\n")
    return 0


def serve_trainer(settings_json: str) -> int:
    """A trainer process on these settings, with this module's exporter and fake fine-tune."""
    import threading

    from edgecascade.cloud.training.cli import run_trainer

    settings = CloudSettings.model_validate_json(settings_json)
    command = [sys.executable, "-m", "tests.utils.training"]
    run_trainer(settings, export_verdicts, threading.Event(), trainer_id="t1", command=command)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve_trainer(sys.argv[2]))
    sys.exit(fake_train(sys.argv[1:]))
