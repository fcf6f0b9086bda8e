"""The offer ledger: a validly signed offer is still refused when it is old or expired."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecascade.edge_agent.offers import OfferLedger, OfferRefused
from edgecascade.shared.manifest import (
    OfferSequence,
    build_manifest,
    sign_manifest,
    sign_offer,
    verify_manifest,
)
from edgecascade.shared.model_messages import ModelManifest

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000.0


def manifest(content: bytes = b"model A") -> ModelManifest:
    return build_manifest(
        content, name="m", version=hashlib.sha256(content).hexdigest()[:8], labels=["x"]
    )


def offer(
    content: bytes, sequence: int, *, ttl: float = 3600, rollback: bool = False
) -> ModelManifest:
    return sign_offer(manifest(content), KEY, sequence, ttl, rollback=rollback, now=NOW)


def ledger(path: Path, now: float = NOW) -> OfferLedger:
    return OfferLedger(path / "offers.json", clock=lambda: now)


def test_newer_offers_pass_and_a_replayed_older_one_is_refused(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.admit(offer(b"model A", 100))
    book.admit(offer(b"model B", 200))
    with pytest.raises(OfferRefused, match="sequence 100, below 200 already accepted"):
        book.admit(offer(b"model A", 100))
    with pytest.raises(OfferRefused, match="below 200"):
        ledger(tmp_path).admit(offer(b"model A", 100))  # a reboot remembers


def test_the_same_offer_again_passes_another_model_under_its_sequence_not(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.admit(offer(b"model A", 100))
    book.admit(offer(b"model A", 100))  # re-sent, or a download resumed after a restart
    with pytest.raises(OfferRefused, match="reuses sequence 100"):
        book.admit(offer(b"model B", 100))


def test_an_expired_offer_is_refused_naming_both_times(tmp_path: Path) -> None:
    late = ledger(tmp_path, now=NOW + 3601)
    with pytest.raises(
        OfferRefused, match=r"expired at 1800003600; the device clock says 1800003601"
    ):
        late.admit(offer(b"model A", 100))
    assert late.sequence == 0  # nothing remembered


def test_unsequenced_manifests_pass_until_a_sequenced_one_came(tmp_path: Path) -> None:
    book = ledger(tmp_path)
    book.admit(manifest(b"model A"))
    book.admit(manifest(b"model B"))  # a cloud from before sequences: every offer is 0
    book.admit(offer(b"model C", 5))
    with pytest.raises(OfferRefused, match="sequence 0, below 5"):
        book.admit(manifest(b"model A"))


def test_an_unreadable_ledger_refuses_unsequenced_offers(tmp_path: Path) -> None:
    (tmp_path / "offers.json").write_text("{not json")
    book = ledger(tmp_path)
    with pytest.raises(OfferRefused):
        book.admit(manifest(b"model A"))
    book.admit(offer(b"model A", 7))


def test_an_offer_is_signed_with_its_sequence_expiry_and_rollback_flag() -> None:
    signed = offer(b"model A", 42, ttl=60, rollback=True)
    verify_manifest(signed, KEY.public_key())
    assert (signed.sequence, signed.expires_at, signed.rollback) == (42, NOW + 60, True)
    forged = signed.model_copy(update={"sequence": 43})
    with pytest.raises(Exception, match="bad signature"):
        verify_manifest(forged, KEY.public_key())
    unflagged = signed.model_copy(update={"rollback": False})
    with pytest.raises(Exception, match="bad signature"):
        verify_manifest(unflagged, KEY.public_key())


def test_a_manifest_signed_before_sequences_keeps_its_signature() -> None:
    """The new fields are left out at their defaults: the canonical bytes did not change."""
    old = sign_manifest(manifest(), KEY)
    assert "sequence" not in old.model_dump_json() and "rollback" not in old.model_dump_json()
    verify_manifest(ModelManifest.model_validate_json(old.model_dump_json()), KEY.public_key())


def test_sequences_increase_even_within_one_clock_tick() -> None:
    sequence = OfferSequence(clock=lambda: NOW)
    first, second = sequence.next(), sequence.next()
    assert first == int(NOW * 1_000_000) and second == first + 1
