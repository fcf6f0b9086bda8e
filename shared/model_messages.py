"""The model distribution messages: signed manifests, offers, chunks and acknowledgements.

Part of the contract with :mod:`shared.messages` (the models here are built the same way, from
:mod:`shared.fields`); kept apart because they are the rollout's own vocabulary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, JsonValue, StringConstraints

from edgecascade.shared.fields import (
    INT64_MAX,
    STRICT,
    Ident,
    Label,
    Omitting,
    OmitWhen,
    Sha256,
    ShortText,
    Version,
    plain_json,
)
from edgecascade.shared.messages import Message


class GoldenCase(BaseModel):
    """A smoke test shipped with a model: this image must give this top-1 (within tolerance)."""

    model_config = STRICT

    image_png_b64: Annotated[
        str, StringConstraints(max_length=256 * 1024, pattern=r"^[A-Za-z0-9+/]*={0,2}$")
    ]
    top1_index: int = Field(ge=0)
    top1_score: float = Field(ge=0, le=1)
    tolerance: float = Field(0.05, ge=0, le=1)


class ModelManifest(Omitting):
    """What a device needs to fetch, verify and run a model."""

    model_config = STRICT

    name: Ident
    version: Version
    sha256: Sha256
    size_bytes: int = Field(gt=0)
    chunk_size: int = Field(gt=0, le=1 << 20)
    labels: Annotated[list[Label], Field(max_length=100_000)]
    temperature: float = Field(1.0, gt=0)
    card: Annotated[dict[str, JsonValue], AfterValidator(plain_json)] = Field(
        {}, description="The model card, as JSON."
    )
    golden: Annotated[list[GoldenCase], Field(max_length=32)] = Field(
        [], description="Smoke tests the device runs before it switches to the model."
    )
    # The three offer fields are left out of the JSON at their defaults (``OmitWhen``), so a
    # manifest signed before they existed keeps its canonical bytes and its signature.
    sequence: Annotated[int, OmitWhen(lambda sequence: sequence == 0)] = Field(
        0,
        ge=0,
        le=INT64_MAX,
        description="Issue number of this signed offer, increasing (the cloud's issue time in "
        "microseconds): a device refuses one below the highest it accepted, so a replayed old "
        "offer cannot install an older model. 0: a manifest from before sequences.",
    )
    expires_at: Annotated[float | None, OmitWhen(lambda expires_at: expires_at is None)] = Field(
        None,
        ge=0,
        description="Unix seconds after which a device refuses this offer.",
    )
    rollback: Annotated[bool, OmitWhen(lambda rollback: not rollback)] = Field(
        False,
        description="Signed as a rollback: the cloud means to go back to this model.",
    )
    signature: Annotated[str, StringConstraints(max_length=256, pattern=r"^[0-9a-f]*$")] = Field(
        "", description="ed25519 signature (hex) over the manifest without this field."
    )


class ModelOfferMessage(Message):
    """Cloud (via gateway) to device: install this model."""

    rollout_id: Ident
    manifest: ModelManifest


class ModelChunkRequestMessage(Message):
    """Device to gateway: send me these chunks (resume = ask for the missing ones)."""

    sha256: Sha256
    indexes: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=4096)]


class ModelChunkHeader(Message):
    """Header of a model chunk; the chunk bytes follow it in the frame codec."""

    sha256: Sha256
    index: int = Field(ge=0)
    total: int = Field(gt=0)


class ModelAckMessage(Message):
    """Device to cloud: how applying a model went."""

    rollout_id: Ident
    version: Version
    sha256: Sha256
    status: Literal["downloading", "verified", "applied", "committed", "rolled_back", "failed"]
    detail: ShortText = ""
