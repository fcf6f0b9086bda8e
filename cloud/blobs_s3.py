"""The blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW...), through boto3.

Keys are ``<prefix><area>/<key>``: frames and model files of one deployment side by side in one
bucket. ``put`` first asks whether the key is there (a replayed escalation skips the upload, as
the file store skips the write); two replicas racing on the same key both upload the same bytes,
which S3 resolves by keeping one whole object. Missing keys raise
:class:`~cloud.blobs.BlobNotFound`; every other failure (credentials, network, a missing bucket)
raises boto3's error, naming the bucket and key, for the caller's retry or error path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from edgecascade.cloud.blobs import Area, BlobNotFound

if TYPE_CHECKING:
    from edgecascade.cloud.settings import BlobSection

MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(exc: Exception) -> bool:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", "")) in MISSING


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def from_settings(cls, settings: BlobSection, area: Area) -> S3BlobStore:
        import boto3

        client = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name=settings.region)
        return cls(client, settings.bucket, f"{settings.prefix}{area}/")

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes) -> bool:
        """Upload ``data`` unless ``key`` is there; True if it was uploaded."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return False
        except ClientError as exc:
            if not _missing(exc):
                raise
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return True

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(key) from None
            raise
        body: bytes = response["Body"].read()
        return body

    def size(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(key) from None
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def inventory(self) -> Iterator[tuple[str, int]]:
        """Every key of this area with its size, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :], int(item["Size"])
