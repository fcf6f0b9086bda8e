"""``cloud dataset export``: verdicts to a dataset the trainer reads, a person's label winning,
a stable held-out slice, corrupt frames skipped with their reason, filters, and the command's
errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgecascade.cli import main
from edgecascade.cloud.dataset import DatasetFilters, LabelSource, read_dataset, split_for
from edgecascade.cloud.db.models import Escalation
from edgecascade.cloud.errors import DatasetError
from edgecascade.cloud.export import export_dataset, soft_targets
from edgecascade.cloud.labels import set_override
from edgecascade.cloud.services import Services
from edgecascade.cloud.settings import CloudSettings
from tests.utils.judged import store_judged


def test_an_export_is_a_dataset_the_trainer_reads(services: Services, tmp_path: Path) -> None:
    judged = [
        store_judged(services, edge="cat", cloud=cloud, captured_at=1000.0 + i)
        for i, cloud in enumerate(["dog", "cat", "bird", "dog"] * 5)
    ]
    store_judged(services, cloud=None, captured_at=2000.0)  # no verdict: not a sample
    with services.sessions() as session:
        set_override(session, judged[0].msg_id, "bird", "", "alice")
        summary = export_dataset(session, services.blobs, DatasetFilters(), tmp_path / "a")
    manifest, samples = read_dataset(tmp_path / "a")
    assert manifest.labels == ["cat", "dog", "bird"] and manifest.count == 20
    assert [s.id for s in samples] == [h.msg_id for h in judged]  # by capture time
    first = samples[0]
    assert (first.label, first.label_source, first.label_index) == ("bird", LabelSource.HUMAN, 2)
    assert first.file == f"images/bird/{first.id}.jpg" and first.cloud_top[0].label == "dog"
    assert samples[1].label_source is LabelSource.CLOUD and samples[1].label == "cat"
    assert first.edge_top is not None and first.edge_top[0].label == "cat"
    assert (first.edge_model, first.cloud_model) == ("mobilenet_v2@1.0.0", "cloud@2")
    assert first.soft is None and first.audit is False  # the verdicts kept no distribution
    assert all(s.split is split_for(s.id) for s in samples)
    assert summary.holdout == sum(s.split == "holdout" for s in samples)
    assert summary.by_source == {"cloud": 19, "human": 1} and not summary.skipped

    # Exported again: the same split, the same snapshot (it is the manifest's digest).
    with services.sessions() as session:
        again = export_dataset(session, services.blobs, DatasetFilters(), tmp_path / "b")
    assert again.manifest.snapshot_id == manifest.snapshot_id
    with services.sessions() as session, pytest.raises(DatasetError, match="already exists"):
        export_dataset(session, services.blobs, DatasetFilters(), tmp_path / "b")


def test_filters_and_frames_that_cannot_be_used(services: Services, tmp_path: Path) -> None:
    early = store_judged(services, "s1", captured_at=100.0)
    corrupt = store_judged(services, "s1", captured_at=200.0)
    missing = store_judged(services, "s1", captured_at=300.0)
    store_judged(services, "s2", captured_at=250.0)
    with services.sessions() as session:
        paths = {
            row.msg_id: row.blob_path
            for row in session.query(Escalation).filter(Escalation.site_id == "s1")
        }
    root = services.settings.blob_dir
    (root / paths[corrupt.msg_id]).write_bytes(b"\xff\xd8 not a jpeg")
    services.blobs.delete(paths[missing.msg_id])

    filters = DatasetFilters(site="s1", since=100.0, until=300.5)
    with services.sessions() as session:
        summary = export_dataset(session, services.blobs, filters, tmp_path / "d")
    _, samples = read_dataset(tmp_path / "d")
    assert [s.id for s in samples] == [early.msg_id]
    reasons = {skip.id: skip.reason for skip in summary.skipped}
    assert "not a decodable image" in reasons[corrupt.msg_id]
    assert "missing from the blob store" in reasons[missing.msg_id]
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["filters"]["site"] == "s1"

    with services.sessions() as session:
        with pytest.raises(DatasetError, match="unknown site 'nowhere'; the sites are: s1, s2"):
            export_dataset(session, services.blobs, DatasetFilters(site="nowhere"), tmp_path / "e")
        with pytest.raises(DatasetError, match="no frame with a cloud verdict"):
            export_dataset(session, services.blobs, DatasetFilters(since=1e12), tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_soft_targets_map_the_cloud_distribution_by_label_name() -> None:
    top = [{"index": 0, "label": "dog", "score": 0.6}]
    verdict = SimpleNamespace(probs=[0.6, 0.1, 0.2, 0.1], top=top)
    cloud = ["dog", "fish", "cat", "bird"]
    soft = soft_targets(verdict, ["cat", "dog", "bird"], cloud)
    assert soft == pytest.approx([0.2 / 0.9, 0.6 / 0.9, 0.1 / 0.9])
    assert soft_targets(verdict, ["cat", "horse"], cloud) is None  # an edge label it lacks
    assert soft_targets(verdict, ["cat", "dog"]) is None  # its labels unknown: top-1 only
    assert soft_targets(SimpleNamespace(probs=None, top=top), ["dog"], cloud) is None
    assert soft_targets(SimpleNamespace(top=top), ["dog"], cloud) is None  # no column at all


def test_the_command_prints_a_summary_and_fails_clearly(
    cloud_settings: CloudSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgecascade.cloud.services import open_services

    services = open_services(cloud_settings, start_ingest=False)
    try:
        store_judged(services, "s1", edge="cat", cloud="dog", captured_at=1_764_590_400.0)
    finally:
        services.close()
    store = ["--database-url", cloud_settings.db_url, "--data-dir", str(cloud_settings.data_dir)]
    out = tmp_path / "ds"
    export = ["cloud", "dataset", "export", *store, "--out", str(out)]
    assert main([*export, "--site", "s1", "--since", "2025-12-01T12:00:00Z"]) == 0
    text = capsys.readouterr().out
    assert "samples" in text and "       1" in text and "dog" in text
    assert read_dataset(out)[0].count == 1

    assert main([*export[:-1], str(tmp_path / "x"), "--site", "s9"]) == 2
    assert "unknown site 's9'" in capsys.readouterr().err
    assert main([*export[:-1], str(tmp_path / "x"), "--since", "2025-12-02"]) == 2
    assert "no frame with a cloud verdict" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*export[:-1], str(tmp_path / "x"), "--since", "yesterday"])
    assert "neither epoch seconds nor an ISO 8601 time" in capsys.readouterr().err
