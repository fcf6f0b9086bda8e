"""Signed model manifests: what a device checks before it runs a model it was sent.

The signature is ed25519 over the manifest's canonical bytes: the manifest as JSON without its
``signature`` field, keys sorted, no whitespace. The cloud holds the private key; devices are
configured with the public key and refuse unsigned or wrongly signed manifests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgecascade.shared.errors import ContractError
from edgecascade.shared.model_messages import GoldenCase, ModelManifest


class ManifestError(ContractError):
    """A manifest that is unsigned, wrongly signed or does not match its model."""


def canonical_bytes(manifest: ModelManifest) -> bytes:
    body = manifest.model_dump(mode="json", exclude={"signature"})
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_manifest(manifest: ModelManifest, key: Ed25519PrivateKey) -> ModelManifest:
    return manifest.model_copy(update={"signature": key.sign(canonical_bytes(manifest)).hex()})


def verify_manifest(manifest: ModelManifest, key: Ed25519PublicKey) -> None:
    if not manifest.signature:
        raise ManifestError(f"manifest of {manifest.name} {manifest.version} is not signed")
    try:
        key.verify(bytes.fromhex(manifest.signature), canonical_bytes(manifest))
    except (InvalidSignature, ValueError):
        raise ManifestError(
            f"manifest of {manifest.name} {manifest.version} has a bad signature"
        ) from None


class OfferSequence:
    """Issue numbers for signed offers: the issue time in microseconds, never below the last one
    this process issued (two offers in the same microsecond still increase). Across restarts and
    replicas it increases as long as the cloud's clock does not go back; if it did, devices
    refuse the new offers as replays (naming both numbers) until the clock passes the old ones:
    nothing older installs, nothing installs by mistake."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, int(self._clock() * 1_000_000))
        return self._last


def sign_offer(
    manifest: ModelManifest,
    key: Ed25519PrivateKey,
    sequence: int,
    ttl_s: float,
    *,
    rollback: bool = False,
    now: float | None = None,
) -> ModelManifest:
    """The registry's manifest re-signed for one offer: its sequence, an expiry ``ttl_s`` from
    now, and whether it is a rollback."""
    issued = time.time() if now is None else now
    fresh = manifest.model_copy(
        update={
            "sequence": sequence,
            "expires_at": issued + ttl_s,
            "rollback": rollback,
            "signature": "",
        }
    )
    return sign_manifest(ModelManifest.model_validate(fresh.model_dump()), key)


def verify_content(manifest: ModelManifest, content: bytes) -> None:
    if len(content) != manifest.size_bytes:
        raise ManifestError(f"model is {len(content)} bytes, manifest says {manifest.size_bytes}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != manifest.sha256:
        raise ManifestError(f"model sha256 {digest[:16]}... != manifest {manifest.sha256[:16]}...")


def build_manifest(
    content: bytes,
    *,
    name: str,
    version: str,
    labels: Sequence[str],
    card: dict[str, object] | None = None,
    golden: Sequence[GoldenCase] = (),
    chunk_size: int = 64 * 1024,
) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "name": name,
            "version": version,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_bytes": len(content),
            "chunk_size": chunk_size,
            "labels": list(labels),
            "card": card or {},
            "golden": list(golden),
        }
    )


def golden_case(
    png: bytes, top1_index: int, top1_score: float, tolerance: float = 0.05
) -> GoldenCase:
    return GoldenCase(
        image_png_b64=base64.b64encode(png).decode(),
        top1_index=top1_index,
        top1_score=top1_score,
        tolerance=tolerance,
    )


def generate_keys(directory: Path) -> tuple[Path, Path]:
    """Write ``manifest-signing.key`` (private, mode 0600) and ``manifest-signing.pub`` (PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / "manifest-signing.key"
    public = directory / "manifest-signing.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(public_pem(key.public_key()))
    return private, public


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The PEM text of a public key, as devices' ``model_public_key`` files hold it."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not a readable PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError(f"{path}: not an ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not a readable PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(f"{path}: not an ed25519 private key")
    return key
