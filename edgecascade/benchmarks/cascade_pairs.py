"""The model pairs ``bench cascade`` can measure: the committed ``fashion`` pair and, when it has
been built (``edgecascade models build imagenet``, needs torch), the ``imagenet`` pair."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ModelPair:
    name: str
    edge: Path
    cloud: Path
    frames: Path


def _imagenet_dir() -> Path:
    """Where ``models build imagenet`` writes (the same rule as :mod:`modelzoo.imagenet`)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgecascade" / "models" / "imagenet"


def resolve_pairs(names: list[str], frames: Path | None) -> tuple[list[ModelPair], dict[str, str]]:
    """The pairs that can run, and for the others why not."""
    pairs: list[ModelPair] = []
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name == "fashion":
            models = REPO / "models" / "fashion"
            pair = ModelPair(
                name,
                models / "fashion_edge_int8.tflite",
                models / "fashion_cloud_int8.tflite",
                frames or REPO / "data" / "fashion-mnist-eval",
            )
        else:
            models = _imagenet_dir()
            if frames is None:
                skipped[name] = (
                    "no labelled ImageNet frames ship with the project; pass "
                    "--frames DIR (<DIR>/<ImageNet label>/<image>)"
                )
                continue
            pair = ModelPair(
                name,
                models / "imagenet_edge_int8.tflite",
                models / "imagenet_cloud_int8.tflite",
                frames,
            )
        missing = [p for p in (pair.edge, pair.cloud, pair.frames) if not p.exists()]
        if missing:
            hint = (
                " (run `edgecascade models build imagenet`; needs torch)"
                if (name == "imagenet")
                else ""
            )
            skipped[name] = f"missing {', '.join(str(p) for p in missing)}{hint}"
            continue
        pairs.append(pair)
    return pairs, skipped


def frame_subset(root: Path, limit: int | None, into: Path) -> Path:
    """``limit`` frames taken in turn from each label's sorted files, as symlinks (or all)."""
    classes = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if not classes:
        raise EdgeCascadeError(f"frame folder {root} has no <label>/ folders of images")
    if limit is None:
        return root
    from edgecascade.edge_agent.sources import IMAGE_SUFFIXES  # numpy: only when the bench runs

    files = [sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for d in classes]
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(f) for f in files):
        chosen.extend(f[depth] for f in files if depth < len(f))
        depth += 1
    for path in chosen[:limit]:
        link = into / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(path.resolve(), link)
    return into
