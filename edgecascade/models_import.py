"""``edgecascade models import FILE.tflite``: bring your own classifier, with a card written for it.

The file is loaded by the LiteRT interpreter and checked the way the runtime uses it (one image
input, NHWC or NCHW with 1 or 3 channels; one output of N class scores). Its card is read from
the model itself (:mod:`~edgecascade.shared.runtime.describe`: TFLite metadata, else the input's
quantization, else defaults); ``--labels`` overrides the labels the metadata carries. The copy and
its card are written as ``<models-dir>/<name>/<name>.tflite`` and ``.json``, all or nothing: both
go to temporary files first and are renamed into place; on any failure neither is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path

from edgecascade.shared.cli import SubParsers
from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard, card_path_for
from edgecascade.shared.runtime.describe import ModelDescription
from edgecascade.shared.runtime.runtime import ModelRuntime

NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def add_import_parser(models: SubParsers[argparse.ArgumentParser]) -> None:
    parser = models.add_parser(
        "import",
        help="check a .tflite classifier and write it with a model card into the model folder",
        description=(
            "Load FILE with the LiteRT interpreter and check that it is a classifier the runtime "
            "can run (one image input, NHWC or NCHW with 1 or 3 channels; one output of class "
            "scores). Read its card from the model: labels, normalisation and colour space from "
            "its TFLite metadata where it carries some, else mean/std from its int8/uint8 input "
            "quantization, else defaults (RGB, inputs in [-1, 1]). Write a copy and the card to "
            "<models-dir>/<name>/<name>.tflite and .json (both or neither) and print what was "
            "found in the model and what was assumed. Edit the card afterwards to change an "
            "assumption: a card always wins over what the model says."
        ),
    )
    parser.add_argument("model", type=Path, metavar="FILE", help="the .tflite file to import")
    parser.add_argument("--name", help="model name (default: the file's stem)")
    parser.add_argument("--version", default="1", help="version for the card (default: 1)")
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="class names, one per line, by output index (default: the label file in the "
        "model's metadata, else output indices)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path("models"),
        metavar="DIR",
        help="the model folder; the import goes to DIR/<name>/ (default: %(default)s)",
    )
    parser.set_defaults(func=run_import)


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    model_path: Path
    card_path: Path
    description: ModelDescription


def import_model(
    model: Path, models_dir: Path, *, name: str | None, version: str, labels: Path | None
) -> Imported:
    """Check ``model``, read its card, write both into ``models_dir/<name>/``."""
    name = name or model.stem
    if not NAME_RE.match(name):
        raise ModelError(
            f"{model}: {name!r} is not a usable model name (1-64 of A-Z a-z 0-9 . _ -, not "
            "starting with a dot); give one with --name"
        )
    model_path = models_dir / name / f"{name}.tflite"
    for path in (model_path, card_path_for(model_path)):
        if path.exists():
            raise ModelError(f"{path} exists already; remove it or import under another --name")
    try:
        content = model.read_bytes()
    except OSError as exc:
        raise ModelError(f"{model}: cannot read model file: {exc.strerror}") from exc
    runtime = ModelRuntime.from_bytes(content, str(model), None, num_threads=1)
    description = _with_labels(runtime, labels)
    card = description.card.model_copy(
        update={
            "name": name,
            "version": version,
            "source": description.card.source or f"imported from {model.name}",
            "build_command": f"edgecascade models import {model.name}",
            "sha256": runtime.sha256,
            "size_bytes": runtime.size_bytes,
        }
    )
    try:
        card = ModelCard.model_validate(card.model_dump())
    except ValueError as exc:
        raise ModelError(f"{model}: the card would be invalid: {exc}") from exc
    ModelRuntime.from_bytes(content, str(model), card, num_threads=1)  # the card fits the model
    _write_pair(content, card, model_path)
    return Imported(
        model_path, card_path_for(model_path), dataclasses.replace(description, card=card)
    )


def _with_labels(runtime: ModelRuntime, labels: Path | None) -> ModelDescription:
    """The runtime's description, with the labels of ``--labels`` when given."""
    description = runtime.description
    if labels is None:
        return description
    try:
        text = labels.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{labels}: cannot read the labels file: {exc}") from exc
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != runtime.num_classes:
        raise ModelError(
            f"{labels}: lists {len(names)} labels but {runtime.source} has "
            f"{runtime.num_classes} outputs"
        )
    return dataclasses.replace(
        description,
        card=description.card.model_copy(update={"labels": names}),
        labels_source="labels file",
        found=(
            *(f for f in description.found if not f.startswith("labels:")),
            f"labels: {len(names)} from {labels.name} (--labels)",
        ),
        assumed=tuple(a for a in description.assumed if not a.startswith("labels:")),
    )


def _write_pair(content: bytes, card: ModelCard, model_path: Path) -> None:
    """Write the model and its card, both or neither."""
    card_path = card_path_for(model_path)
    for path in (model_path, card_path):
        if path.exists():
            raise ModelError(f"{path} exists already; remove it or import under another --name")
    folder = model_path.parent
    created = [d for d in (folder, *folder.parents) if not d.exists()]
    tmp_model = folder / f".{model_path.name}.tmp"
    tmp_card = folder / f".{card_path.name}.tmp"
    placed: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp_model.write_bytes(content)
        card.save(tmp_card)
        for tmp, final in ((tmp_model, model_path), (tmp_card, card_path)):
            os.replace(tmp, final)
            placed.append(final)
    except BaseException as exc:
        for path in (tmp_model, tmp_card, *placed):
            path.unlink(missing_ok=True)
        for directory in created:  # innermost first
            if directory.exists() and not any(directory.iterdir()):
                directory.rmdir()
        if isinstance(exc, OSError):
            raise ModelError(f"{model_path}: cannot write the import: {exc}") from exc
        raise


def run_import(args: argparse.Namespace) -> int:
    imported = import_model(
        args.model, args.models_dir, name=args.name, version=args.version, labels=args.labels
    )
    card, description = imported.description.card, imported.description
    out = [
        f"imported {args.model.name} as {card.name} {card.version}",
        f"  model  {imported.model_path} ({card.size_bytes} bytes, sha256 {card.sha256[:16]})",
        f"  card   {imported.card_path}",
        "found in the model:",
        *(f"  - {line}" for line in description.found),
        "assumed:",
        *(f"  - {line}" for line in description.assumed),
        f"decided: {description.summary()}",
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0
