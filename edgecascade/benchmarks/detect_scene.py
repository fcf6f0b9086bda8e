"""A labelled face-detection set for ``bench detect``, composed from real photos that ship in
packages (``data/photos``, licences in its README): fixed cameras where people come and go.

No labelled face-detection set with a licence that allows redistribution turned up among the
Debian, PyPI and npm packages searched, so the set is composed. Each *camera* is one real
background photo, scaled to cover 1280x720 and never moved; every frame of it gets its own
sensor noise and a slight gain drift, as a real camera's frames do; frames are taken as at 2
per second. *People* are the head and shoulders of two real portraits (public domain), cut out
with a feathered ellipse and pasted: a person enters, walks for 4-15 s (8-30 frames; position
and size drift) and leaves; between visits the scene is empty for 3-12 s (6-24 frames).
Most visits are *near* (a face 200-330 px wide, which the short-range edge detector finds on
the whole frame), some *mid* (60-130 px) and some *far* (16-34 px: only the full-range detector
on tiles finds them). The ground truth is the pasted face box: each source face's box was
labelled by eye (eyebrows to chin, cheek to cheek) and checked against the full-range
detector's box on the source photo, then moved and scaled with the paste. Everything comes from
one seed: the same seed writes the same frames and labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.shared.boxes import Box

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Pixels = npt.NDArray[np.uint8]

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "data" / "photos"
WIDTH, HEIGHT = 1280, 720
JPEG_QUALITY = 85
DEFAULT_SEED = 19

# Source faces: photo, face box (x0, y0, x1, y1) in the photo's pixels, labelled by eye.
FACES: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "collins": ("astronaut.jpg", (180, 78, 268, 172)),
    "hopper": ("grace_hopper.jpg", (165, 145, 355, 325)),
}
# Cameras: one background photo each.
CAMERAS: dict[str, str] = {"temple": "china.jpg", "launchpad": "rocket.jpg", "cafe": "coffee.jpg"}
# Face width in frame pixels per distance, and how often a visit is at that distance.
DISTANCES: dict[str, tuple[tuple[int, int], float]] = {
    "near": ((200, 330), 0.6),
    "mid": ((60, 130), 0.15),
    "far": ((16, 34), 0.25),
}


@dataclass(frozen=True)
class Person:
    """A head-and-shoulders cut-out: pixels, a 0..1 alpha mask and the face box in it."""

    pixels: Pixels
    alpha: npt.NDArray[np.float32]
    face: tuple[float, float, float, float]


@dataclass(frozen=True)
class Visit:
    """One person in view from frame ``start`` (inclusive) to ``end`` (exclusive), the face's
    centre and width moving linearly from ``begin`` to ``finish`` ``(cx, cy, width)``."""

    person: str
    flip: bool
    gain: float
    distance: str
    start: int
    end: int
    begin: tuple[float, float, float]
    finish: tuple[float, float, float]

    def at(self, frame: int) -> tuple[float, float, float]:
        t = (
            0.0
            if self.end - self.start <= 1
            else (frame - self.start) / (self.end - self.start - 1)
        )
        b, f = self.begin, self.finish
        return (b[0] + t * (f[0] - b[0]), b[1] + t * (f[1] - b[1]), b[2] + t * (f[2] - b[2]))


def _read(name: str) -> Pixels:
    import cv2
    import numpy as np

    image = cv2.imread(str(PHOTOS / name), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"scene photo {PHOTOS / name} is missing or unreadable")
    return np.asarray(image, dtype=np.uint8)


def cut_out(photo: Pixels, face: tuple[int, int, int, int]) -> Person:
    """Head and shoulders around ``face``: a head ellipse, a neck and a shoulder ellipse,
    feathered, so the paste has no rectangular edge."""
    import cv2
    import numpy as np

    fx0, fy0, fx1, fy1 = face
    fw, fh = fx1 - fx0, fy1 - fy0
    cx = (fx0 + fx1) / 2
    h, w = photo.shape[:2]
    x0, x1 = max(0, int(cx - 1.25 * fw)), min(w, int(cx + 1.25 * fw))
    y0, y1 = max(0, int(fy0 - 0.7 * fh)), min(h, int(fy1 + 1.1 * fh))
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    centre = (round(cx - x0), round((fy0 + fy1) / 2 - 0.12 * fh - y0))
    cv2.ellipse(mask, centre, (round(0.62 * fw), round(0.78 * fh)), 0, 0, 360, 1.0, -1)
    neck = (round(cx - 0.3 * fw - x0), round(fy1 - 0.2 * fh - y0))
    cv2.rectangle(mask, neck, (round(cx + 0.3 * fw - x0), round(fy1 + 0.6 * fh - y0)), 1.0, -1)
    shoulders = (round(cx - x0), round(fy1 + 1.3 * fh - y0))
    cv2.ellipse(mask, shoulders, (round(1.2 * fw), round(0.85 * fh)), 0, 0, 360, 1.0, -1)
    sigma = max(1.0, 0.05 * fw)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    box = (float(fx0 - x0), float(fy0 - y0), float(fx1 - x0), float(fy1 - y0))
    return Person(np.ascontiguousarray(photo[y0:y1, x0:x1]), np.asarray(mask, np.float32), box)


def background(photo: Pixels) -> Pixels:
    """The photo scaled to cover 1280x720 and centre-cropped."""
    import cv2
    import numpy as np

    h, w = photo.shape[:2]
    scale = max(WIDTH / w, HEIGHT / h)
    big = cv2.resize(photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    y = (big.shape[0] - HEIGHT) // 2
    x = (big.shape[1] - WIDTH) // 2
    return np.asarray(big[y : y + HEIGHT, x : x + WIDTH], dtype=np.uint8).copy()


def plan(frames: int, rng: Any) -> list[Visit]:
    """Visits to one camera: an empty gap, a visit, sometimes a second person at once (in the
    other half of the frame, so nobody hides a face another's label says is visible)."""
    visits: list[Visit] = []
    t = int(rng.integers(2, 12))
    while t < frames:
        duration = int(rng.integers(8, 31))
        half = int(rng.integers(0, 2))
        visits.append(_visit(rng, t, min(frames, t + duration), half))
        if rng.random() < 0.25:
            start = t + int(rng.integers(0, duration))
            if start < frames:
                length = int(rng.integers(6, 21))
                visits.append(_visit(rng, start, min(frames, start + length), 1 - half))
        t += duration + int(rng.integers(6, 25))
    return visits


def _visit(rng: Any, start: int, end: int, half: int) -> Visit:
    names = list(DISTANCES)
    distance = names[int(rng.choice(len(names), p=[DISTANCES[n][1] for n in names]))]
    (low, high), _ = DISTANCES[distance]
    width0 = float(rng.uniform(low, high))
    width1 = float(min(high, max(low, width0 * rng.uniform(0.85, 1.15))))
    lo, hi = (0.05 * WIDTH, 0.5 * WIDTH) if half == 0 else (0.5 * WIDTH, 0.95 * WIDTH)
    # far faces sit higher in the frame (farther away), near ones lower
    ys = {"near": (0.3, 0.55), "mid": (0.3, 0.6), "far": (0.25, 0.55)}[distance]

    def point(width: float) -> tuple[float, float, float]:
        cx = float(rng.uniform(lo + width * 0.6, max(lo + width * 0.6 + 1, hi - width * 0.6)))
        cy = float(rng.uniform(ys[0] * HEIGHT, ys[1] * HEIGHT))
        return (cx, max(cy, width * 0.8), width)

    return Visit(
        person=str(rng.choice(sorted(FACES))),
        flip=bool(rng.random() < 0.5),
        gain=float(rng.uniform(0.8, 1.15)),
        distance=distance,
        start=start,
        end=end,
        begin=point(width0),
        finish=point(width1),
    )


def paste(frame: Pixels, person: Person, visit: Visit, at: int) -> Box:
    """Paste the visit's person into ``frame`` (in place); the face box in frame pixels."""
    import cv2
    import numpy as np

    cx, cy, width = visit.at(at)
    fx0, fy0, fx1, fy1 = person.face
    k = width / (fx1 - fx0)
    pixels, alpha = person.pixels, person.alpha
    if visit.flip:
        pixels, alpha = pixels[:, ::-1], alpha[:, ::-1]
        pw = pixels.shape[1]
        fx0, fx1 = pw - fx1, pw - fx0
    size = (max(1, round(pixels.shape[1] * k)), max(1, round(pixels.shape[0] * k)))
    scaled = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.ascontiguousarray(alpha), size, interpolation=cv2.INTER_AREA)
    ox = round(cx - (fx0 + fx1) / 2 * k)
    oy = round(cy - (fy0 + fy1) / 2 * k)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(WIDTH, ox + size[0]), min(HEIGHT, oy + size[1])
    part = scaled[y0 - oy : y1 - oy, x0 - ox : x1 - ox].astype(np.float32) * visit.gain
    a = mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox, None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(region * (1 - a) + part * a, 0, 255).astype(np.uint8)
    return (
        float(min(max(ox + fx0 * k, 0.0), WIDTH)),
        float(min(max(oy + fy0 * k, 0.0), HEIGHT)),
        float(min(max(ox + fx1 * k, 0.0), WIDTH)),
        float(min(max(oy + fy1 * k, 0.0), HEIGHT)),
    )


def generate(out: Path, seed: int = DEFAULT_SEED, frames_per_camera: int = 200) -> Path:
    """Write every camera's frames (``<camera>/<index>.jpg``) and ``labels.json`` into ``out``;
    return the labels file. ``labels.json``: the seed, the generator's settings and, per frame,
    its camera, index in the camera's sequence, file (relative to ``out``) and face boxes."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    people = {name: cut_out(_read(photo), box) for name, (photo, box) in FACES.items()}
    labelled: list[dict[str, Any]] = []
    for c, (camera, photo) in enumerate(CAMERAS.items()):
        scene = background(_read(photo)).astype(np.float32)
        visits = plan(frames_per_camera, rng)
        (out / camera).mkdir(parents=True, exist_ok=True)
        for i in range(frames_per_camera):
            gain = 1.0 + 0.02 * np.sin(i / 9.0 + c)
            noise = rng.standard_normal(scene.shape, dtype=np.float32) * 2.0
            frame = np.clip(scene * gain + noise, 0, 255).astype(np.uint8)
            boxes = []
            here = [v for v in visits if v.start <= i < v.end]
            for visit in sorted(here, key=lambda v: v.at(i)[2]):  # far ones first
                box = paste(frame, people[visit.person], visit, i)
                boxes.append({"label": "face", "box": [round(v, 1) for v in box]})
            name = f"{camera}/{i:04d}.jpg"
            cv2.imwrite(str(out / name), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            labelled.append({"camera": camera, "index": i, "file": name, "objects": boxes})
    labels = out / "labels.json"
    settings = {"frames_per_camera": frames_per_camera, "width": WIDTH, "height": HEIGHT}
    document = {"generator": __name__, "seed": seed, **settings, "frames": labelled}
    labels.write_text(json.dumps(document, indent=1) + "\n")
    return labels
