"""The agent's frame pipeline: three stages on three threads, joined by bounded queues.

1. **Prepare** (:class:`FrameFeed`, its own thread): read the frame, apply scene gating, preprocess
   it into the model's input tensor.
2. **Infer** (the agent's main loop): ``invoke()`` and postprocess. LiteRT releases the GIL while
   it invokes, so stages 1 and 3 run on another core meanwhile.
3. **Emit** (:class:`Emitter`, its own thread): the escalation decision, the result message, the
   escalation payload, and the commit to the disk outbox: the results waiting together are
   committed in one transaction (one fsync with ``outbox_sync = full``), so the disk's sync
   time is shared by the frames that arrived while the previous commit ran (a group commit).

The three threads hand the GIL to each other several times a frame, so the process's switch
interval is lowered to :data:`SWITCH_INTERVAL_S` (0.5 ms) when the feed starts: with Python's
default 5 ms the loop thread could wait that long for the GIL after each ``invoke()``
(docs/BENCHMARKS.md, ``bench edge``).

A live source keeps producing while the model works; when inference is slower than the camera the
prepare queue is full and the *oldest* waiting frame is dropped (counted in ``dropped``), so the
model always sees the most recent scene and memory stays bounded. Replay sources (folders, files)
block instead: every frame is processed, none dropped. The emit queue always blocks: a result is
never dropped, and a slow disk slows the model down instead of growing memory.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from edgecascade.edge_agent.gating import SceneGate
from edgecascade.edge_agent.sources import Frame, FrameSource

if TYPE_CHECKING:
    from edgecascade.edge_agent.models import EdgeModel
    from edgecascade.shared.runtime.preprocess import Array

logger = logging.getLogger(__name__)

T = TypeVar("T")
# The interpreter's GIL switch interval while the pipeline runs (Python's default: 5 ms). After
# each invoke() the loop thread needs the GIL back from the prepare or emit thread; with the
# default it may wait up to 5 ms for it, longer than a small detector's whole invoke.
SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame with its input tensor, made for one model (``runtime``); ``changed``: the scene
    gate passed it as different from the previous frame (False without a gate)."""

    frame: Frame
    tensor: Array
    runtime: EdgeModel
    capture_ms: float
    preprocess_ms: float
    changed: bool = False


class FrameFeed:
    """Stage 1: read, gate and preprocess frames on a thread of their own."""

    def __init__(
        self,
        source: FrameSource,
        runtime: EdgeModel,
        *,
        maxsize: int = 1,
        newest_wins: bool = True,
        gate: SceneGate | None = None,
    ) -> None:
        self.source = source
        self.runtime = runtime  # replaced by the agent when it switches models
        self.dropped = 0
        self.ended = threading.Event()
        self._gate = gate
        self._gated_before = 0  # frames skipped by gates replaced since
        self._newest_wins = newest_wins
        self._queue: queue.Queue[Prepared] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prepare", daemon=True)

    def start(self) -> None:
        """Start reading frames (built first, started by the agent's ``run``); the process's
        GIL switch interval becomes :data:`SWITCH_INTERVAL_S`."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread.start()

    @property
    def gated(self) -> int:
        gate = self._gate
        return self._gated_before + (gate.skipped if gate else 0)

    def set_gate(self, gate: SceneGate | None) -> None:
        """Swap the scene gate (a remote config; any thread): the next frame uses it."""
        old, self._gate = self._gate, gate
        self._gated_before += old.skipped if old else 0

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    return
                t1 = time.perf_counter()
                gate = self._gate  # one read per frame: a swap takes effect at the next one
                if gate is not None and not gate.changed(frame.image):
                    continue
                t2 = time.perf_counter()
                runtime = self.runtime
                tensor = runtime.preprocess(frame.image)
                changed = gate is not None and gate.compared
                capture_ms, preprocess_ms = (t1 - t0) * 1000, (time.perf_counter() - t2) * 1000
                item = Prepared(frame, tensor, runtime, capture_ms, preprocess_ms, changed)
                self._put(item)
        except Exception:  # a broken frame must not leave the agent waiting forever
            logger.exception("frame preparation failed; the source is treated as ended")
        finally:
            self.ended.set()

    def _put(self, item: Prepared) -> None:
        while not self._stop.is_set():
            if not self._newest_wins:
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float) -> Prepared | None:
        """The next prepared frame, or None if none arrived within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._queue.get(timeout=min(0.05, max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                if self.exhausted or time.monotonic() >= deadline:
                    return None

    @property
    def exhausted(self) -> bool:
        """The source ended and every frame it gave has been taken."""
        return self.ended.is_set() and self._queue.empty()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.source.close()


class Emitter(Generic[T]):
    """Stage 3: hand items to ``emit`` on a thread of its own, in order, none dropped.

    ``emit`` takes a batch: every item already waiting when the thread comes back for more (up
    to ``batch``), so a sink that commits to disk commits them in one transaction (one fsync)
    instead of one each. A batch is never waited for: an item that finds the thread idle goes
    alone, at once."""

    def __init__(self, emit: Callable[[list[T]], None], maxsize: int = 16, batch: int = 16) -> None:
        self._emit = emit
        self._batch = max(1, batch)
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="emit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: T) -> None:
        self._queue.put(item)

    def _take(self) -> tuple[list[T], bool]:
        """The next batch (blocks for its first item) and whether the end mark came after it."""
        first = self._queue.get()
        if first is None:
            return [], True
        items = [first]
        while len(items) < self._batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _run(self) -> None:
        ended = False
        while not ended:
            items, ended = self._take()
            if not items:
                continue
            try:
                self._emit(items)
            except Exception:
                logger.exception("emitting %d result(s) failed", len(items))

    def close(self) -> None:
        """Emit everything queued, then stop."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
