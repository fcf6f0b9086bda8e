"""Which card a model runs with: its own, or one read from the model itself.

A card next to the model (or given with ``--card``) always wins. Without one, the model is asked:

1. its **TFLite metadata** (:mod:`~edgecascade.shared.runtime.tflite_metadata`): labels from the
   label file it carries, normalisation (mean/std, one or per channel) and colour space;
2. else its **input quantization**: an int8/uint8 input's scale and zero point say which float
   range the graph expects, ``[(qmin - zp) * scale, (qmax - zp) * scale]``; the 256 pixel levels
   are mapped onto it one to one, so ``std = 1 / scale`` and ``mean = zp - qmin`` (an int8 input
   with scale 0.98 and zero point -128 expects pixels in [0, 250]: mean 0, std 1.02);
3. else the **defaults** of :meth:`ModelCard.for_bare_model` (RGB, stretch, [-1, 1]).

:class:`ModelDescription` keeps what decided each part, what was read and what was assumed, so
``models eval``, ``models import`` and the agent's log can say it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, Preprocess
from edgecascade.shared.runtime.preprocess import InputSpec, TensorSpec
from edgecascade.shared.runtime.tflite_metadata import TfliteMetadata, read_metadata

Source = Literal["card", "metadata", "input quantization", "defaults"]
LabelsSource = Literal["card", "metadata", "labels file", "defaults"]


@dataclass(frozen=True, slots=True)
class ModelDescription:
    """The card a model runs with and where its parts came from."""

    card: ModelCard
    preprocess_source: Source  # what decided mean and std
    labels_source: LabelsSource
    found: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()

    def summary(self) -> str:
        p = self.card.preprocess
        return (
            f"preprocessing from {self.preprocess_source} (mean {_fmt(p.mean)}, std "
            f"{_fmt(p.std)}, {p.color}, {p.resize}); labels from {self.labels_source}"
        )


def _fmt(value: float | list[float]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.6g}" for v in value) + "]"
    return f"{value:.6g}"


def from_card(card: ModelCard) -> ModelDescription:
    return ModelDescription(card, "card", "card")


def quantization_normalization(tensor: TensorSpec) -> tuple[float, float] | None:
    """``(mean, std)`` that map pixels 0..255 one to one onto a quantized integer input's levels;
    ``None`` for a float or unquantized input."""
    if tensor.dtype not in ("int8", "uint8") or not tensor.quantized:
        return None
    qmin = int(np.iinfo(np.dtype(tensor.dtype)).min)
    return float(tensor.zero_point - qmin), 1.0 / tensor.scale


def float_range(tensor: TensorSpec) -> tuple[float, float]:
    """The float values a quantized integer tensor can hold."""
    info = np.iinfo(np.dtype(tensor.dtype))
    low = (int(info.min) - tensor.zero_point) * tensor.scale
    return low, (int(info.max) - tensor.zero_point) * tensor.scale


def describe(
    content: bytes, source: str, name: str, spec: InputSpec, num_classes: int
) -> ModelDescription:
    """A card for a model without one, from what the model says about itself."""
    metadata = read_metadata(content, source)
    found = [_input_text(spec), f"output: {num_classes} classes"]
    assumed: list[str] = []
    labels: tuple[str, ...] = ()
    if metadata is not None:
        found.append(f"TFLite metadata{f' of {metadata.name!r}' if metadata.name else ''}")
        labels = _metadata_labels(metadata, num_classes, source)
        if labels:
            found.append(f"labels: {len(labels)} from {metadata.label_file!r} in the metadata")
    if not labels:
        assumed.append("labels: output indices (the model carries no label file)")
    preprocess_source, mean, std = _normalization(metadata, spec, source, found, assumed)
    color = _color(metadata, spec, source, found, assumed)
    assumed += ["resize: stretch to the input size", "output: logits or probabilities, by sum"]
    try:
        preprocess = Preprocess(color=color, mean=mean, std=std)
    except ValueError as exc:
        raise ModelError(f"{source}: its normalisation is unusable: {exc}") from exc
    card = ModelCard(
        name=name,
        labels=list(labels),
        preprocess=preprocess,
        source=_provenance(metadata),
        license=metadata.license if metadata else "",
    )
    return ModelDescription(
        card,
        preprocess_source,
        "metadata" if labels else "defaults",
        tuple(found),
        tuple(assumed),
    )


def _input_text(spec: InputSpec) -> str:
    t = spec.tensor
    text = f"input: {'x'.join(map(str, t.shape))} {t.dtype} {spec.layout}"
    if t.quantized and t.dtype in ("int8", "uint8"):
        low, high = float_range(t)
        text += f", scale {t.scale:.6g} zero point {t.zero_point} (float range [{low:.4g}, "
        text += f"{high:.4g}])"
    return text


def _metadata_labels(metadata: TfliteMetadata, num_classes: int, source: str) -> tuple[str, ...]:
    if metadata.labels and len(metadata.labels) != num_classes:
        raise ModelError(
            f"{source}: its metadata's label file {metadata.label_file!r} lists "
            f"{len(metadata.labels)} labels but the model has {num_classes} outputs"
        )
    return metadata.labels


def _normalization(
    metadata: TfliteMetadata | None,
    spec: InputSpec,
    source: str,
    found: list[str],
    assumed: list[str],
) -> tuple[Source, float | list[float], float | list[float]]:
    if metadata is not None and metadata.mean is not None and metadata.std is not None:
        mean = _per_channel("mean", metadata.mean, spec.channels, source)
        std = _per_channel("std", metadata.std, spec.channels, source)
        found.append(f"normalisation: mean {_fmt(mean)}, std {_fmt(std)} (metadata)")
        return "metadata", mean, std
    derived = quantization_normalization(spec.tensor)
    if derived is not None:
        found.append(
            f"normalisation: mean {derived[0]:.6g}, std {derived[1]:.6g} (from the input's "
            "quantization: pixel levels 0..255 onto its integer levels)"
        )
        return "input quantization", derived[0], derived[1]
    defaults = Preprocess()
    assumed.append(
        f"normalisation: mean {defaults.mean}, std {defaults.std} (inputs in [-1, 1]; "
        "the model says nothing about it)"
    )
    return "defaults", defaults.mean, defaults.std


def _per_channel(
    what: str, values: tuple[float, ...], channels: int, source: str
) -> float | list[float]:
    if len(set(values)) == 1:
        return values[0]
    if len(values) != channels:
        raise ModelError(
            f"{source}: its metadata gives {len(values)} normalisation {what} values "
            f"{list(values)} but the input has {channels} channel(s)"
        )
    return list(values)


def _color(
    metadata: TfliteMetadata | None,
    spec: InputSpec,
    source: str,
    found: list[str],
    assumed: list[str],
) -> str:
    said = metadata.color if metadata is not None else None
    if said is not None:
        if (said == "gray") != (spec.channels == 1):
            raise ModelError(
                f"{source}: its metadata says colour space {said.upper()} but the input has "
                f"{spec.channels} channel(s)"
            )
        found.append(f"colour space: {said} (metadata)")
        return said
    if spec.channels == 1:
        found.append("colour: gray (one input channel)")
        return "gray"
    assumed.append("colour: RGB channel order")
    return "rgb"


def _provenance(metadata: TfliteMetadata | None) -> str:
    if metadata is None:
        return ""
    author = f"by {metadata.author}" if metadata.author else ""
    parts = [metadata.name, metadata.description, author]
    return "; ".join(part for part in parts if part)
