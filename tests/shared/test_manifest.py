from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.shared.manifest import (
    ManifestError,
    build_manifest,
    canonical_bytes,
    generate_keys,
    load_private_key,
    load_public_key,
    sign_manifest,
    verify_content,
    verify_manifest,
)


def test_sign_verify_and_tampering(tmp_path: Path) -> None:
    private_path, public_path = generate_keys(tmp_path)
    assert private_path.stat().st_mode & 0o777 == 0o600
    key, public = load_private_key(private_path), load_public_key(public_path)
    content = b"TFL3" * 100
    manifest = sign_manifest(build_manifest(content, name="m", version="1", labels=["a"]), key)
    verify_manifest(manifest, public)
    verify_content(manifest, content)
    assert b"signature" not in canonical_bytes(manifest)
    with pytest.raises(ManifestError, match="bad signature"):
        verify_manifest(manifest.model_copy(update={"version": "2"}), public)
    with pytest.raises(ManifestError, match="bad signature"):
        verify_manifest(manifest, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ManifestError, match="not signed"):
        verify_manifest(manifest.model_copy(update={"signature": ""}), public)
    with pytest.raises(ManifestError, match="sha256"):
        verify_content(manifest, b"TFL4" * 100)
    with pytest.raises(ManifestError, match="bytes"):
        verify_content(manifest, content[:-1])


def test_unreadable_keys_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(ManifestError, match=r"bad\.pub"):
        load_public_key(bad)
    with pytest.raises(ManifestError, match=r"missing\.key"):
        load_private_key(tmp_path / "missing.key")
