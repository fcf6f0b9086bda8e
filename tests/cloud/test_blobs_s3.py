"""The blob store's two backends behave alike, and two cloud replicas share frames and models
through an S3 bucket with no shared filesystem.

The S3 side runs against moto's S3 server (``moto[server]``): a real HTTP server that speaks the
S3 REST protocol, so boto3's whole request path (signing, retries, pagination, error codes) is
exercised. No S3-compatible server proper (MinIO, Ceph RGW with its standalone store) installs
here from the package registries, so this is the most faithful one available.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecascade.brokers import free_port
from edgecascade.cloud.app import create_app
from edgecascade.cloud.blobs import BlobNotFound, BlobStore, FileBlobStore, open_blobs
from edgecascade.cloud.blobs_s3 import S3BlobStore
from edgecascade.cloud.db.models import Escalation
from edgecascade.cloud.registry import ModelStore
from edgecascade.cloud.services import open_services
from edgecascade.cloud.settings import BlobSection, CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import ApiClient, inbound, serving
from tests.utils.factories import make_escalation

BUCKET = "edgecascade-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on a free port, with one bucket; boto3 finds its credentials in the
    environment, as on a replica."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "edgecascade",
        "AWS_SECRET_ACCESS_KEY": "edgecascade-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_section(endpoint: str, prefix: str = "ec/") -> BlobSection:
    return BlobSection(backend="s3", bucket=BUCKET, prefix=prefix, endpoint_url=endpoint)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "file":
        return FileBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3BlobStore.from_settings(s3_section(endpoint), "frames")


def test_both_backends_keep_put_get_size_delete_and_list_alike(store: BlobStore) -> None:
    assert store.put("s1/cam1/a.jpg", b"first") is True
    assert store.put("s1/cam1/a.jpg", b"other") is False  # a replay leaves the blob as it was
    assert store.get("s1/cam1/a.jpg") == b"first"
    assert store.size("s1/cam1/a.jpg") == 5
    store.put("s1/cam2/b.png", b"xy")
    assert sorted(store.inventory()) == [("s1/cam1/a.jpg", 5), ("s1/cam2/b.png", 2)]
    store.delete("s1/cam1/a.jpg")
    store.delete("s1/cam1/a.jpg")  # deleting what is gone is no error
    with pytest.raises(BlobNotFound):
        store.get("s1/cam1/a.jpg")
    with pytest.raises(BlobNotFound):
        store.size("nothing/here.jpg")
    assert [key for key, _ in store.inventory()] == ["s1/cam2/b.png"]


def test_a_bucket_that_does_not_exist_is_an_error_naming_it(s3_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    section = BlobSection(backend="s3", bucket="no-such-bucket", endpoint_url=s3_endpoint)
    with pytest.raises(ClientError, match=r"NoSuchBucket|Not Found|404"):
        S3BlobStore.from_settings(section, "frames").put("k.jpg", b"x")


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match=r"needs blobs\.bucket"):
        BlobSection(backend="s3")


def test_two_replicas_share_frames_and_models_through_the_bucket(
    cloud_settings: CloudSettings, s3_endpoint: str, tmp_path: Path
) -> None:
    """Replica A stores an escalation's frame and registers a model file; replica B, with its
    own data directory (no shared disk), serves the frame over HTTP and reads the model."""
    blobs = s3_section(s3_endpoint)
    settings_a = cloud_settings.model_copy(update={"blobs": blobs})
    settings_b = settings_a.model_copy(update={"data_dir": tmp_path / "replica-b"})
    header, jpeg = make_escalation("s1", "cam-1", width=32, height=24)
    services_a = open_services(settings_a, start_ingest=False)
    try:
        item = inbound("s1", "cam-1", Kind.ESCALATION, header, jpeg)
        assert StoreWriter(services_a.engine, services_a.blobs).write([item]).stored == 1
        ModelStore(settings_a).put("ab" * 32, b"model bytes")
        with services_a.sessions() as session:
            row = session.get(Escalation, header.msg_id)
            assert row is not None
            key = row.blob_path
    finally:
        services_a.close()
    assert not (settings_a.blob_dir / key).exists()  # not on A's disk: in the bucket
    app = create_app(settings_b, start_ingest=False)
    with serving(app) as base_url, ApiClient(base_url=base_url, timeout=10) as api:
        api.services = app.state.services
        response = api.get(f"/api/escalations/{header.msg_id}/frame", headers=api.as_role("viewer"))
    assert response.status_code == 200 and response.content == jpeg
    assert ModelStore(settings_b).get("ab" * 32) == b"model bytes"
    listed: list[Any] = list(open_blobs(settings_b, "models").inventory())
    assert listed == [("ab" * 32 + ".tflite", 11)]
