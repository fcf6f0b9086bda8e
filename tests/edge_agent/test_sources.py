"""Frame sources on real media: a video file, a live HTTP MJPEG stream that goes away and comes
back, newest-frame-wins when inference is slower than capture, and scene-change gating."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.edge_agent.errors import SourceError
from edgecascade.edge_agent.feed import SWITCH_INTERVAL_S, Emitter, FrameFeed
from edgecascade.edge_agent.gating import SceneGate
from edgecascade.edge_agent.settings import GatingSettings, SourceSettings
from edgecascade.edge_agent.sources import Frame, open_source
from edgecascade.shared.codec import decode
from edgecascade.shared.messages import StateMessage
from edgecascade.shared.runtime.runtime import ModelRuntime
from edgecascade.shared.topics import Kind, Topic, topic
from tests.utils.agents import RunningAgent, agent_settings
from tests.utils.mjpeg import MjpegCamera
from tests.utils.mqtt import Collector, wait_until
from tests.utils.paths import EDGE_MODEL, EVAL_SAMPLE


def frames(n: int) -> list[np.ndarray]:
    files = sorted(EVAL_SAMPLE.rglob("*.png"))[:n]
    images = [cv2.imread(str(f)) for f in files]
    return [cv2.resize(image, (112, 112)) for image in images if image is not None]


def write_video(path: Path, images: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (112, 112))
    for image in images:
        writer.write(image)
    writer.release()
    return path


def test_video_file_yields_every_frame_then_ends(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames(12))
    source, live = open_source(SourceSettings(kind="video", path=video))
    assert not live
    got = []
    while (frame := source.read()) is not None:
        got.append(frame)
    assert len(got) == 12 and got[0].image.shape == (112, 112, 3)
    looping, _ = open_source(SourceSettings(kind="video", path=video, loop=True))
    assert sum(looping.read() is not None for _ in range(30)) == 30


def test_bad_source_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"needs source\.url"):
        SourceSettings(kind="stream")
    with pytest.raises(ValueError, match="only used with kind 'stream'"):
        SourceSettings(kind="camera", url="rtsp://x")


def test_stream_reconnects_with_backoff_and_reports_it(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in frames(5)]
    camera = MjpegCamera(jpegs)
    camera.start()
    source = SourceSettings(kind="stream", url=camera.url, fps=100, backoff_max_s=0.5)
    settings = agent_settings(broker, tmp_path / "agent", source)
    state_topic = topic("s1", "cam1", Kind.STATE)

    def details() -> list[str]:
        out = []
        for m in collector.messages:
            message = decode(Topic.parse(m.topic), m.payload).message
            if isinstance(message, StateMessage):
                out.append(message.detail)
        return out

    with Collector(broker.settings, state_topic) as collector:
        running = RunningAgent(settings)
        agent = running.agent
        assert wait_until(lambda: agent.stats.frames >= 20)
        camera.stop()  # the camera goes away
        assert wait_until(lambda: any("reconnecting" in d for d in details()))
        frames_while_down = agent.stats.frames
        camera.start()  # and comes back on the same address
        assert wait_until(lambda: agent.stats.frames > frames_while_down + 20, timeout=30)
        assert wait_until(lambda: details()[-1].endswith("source ok"))
        assert running.thread.is_alive()
        running.close()
        camera.stop()


class SlowSource:
    """A push source producing numbered frames as fast as it can (a camera)."""

    status = "ok"
    skipped = 0

    def __init__(self) -> None:
        self.produced = 0

    def read(self) -> Frame | None:
        time.sleep(0.001)  # a camera's frame interval, on purpose
        self.produced += 1
        image = np.full((8, 8), self.produced % 256, dtype=np.uint8)
        return Frame(str(self.produced), image, time.time())

    def close(self) -> None:
        """Nothing to release."""


def test_newest_frame_wins_and_drops_are_counted() -> None:
    source = SlowSource()
    feed = FrameFeed(source, ModelRuntime.load(EDGE_MODEL), maxsize=1, newest_wins=True)
    feed.start()
    taken = []
    for _ in range(5):
        time.sleep(0.05)  # inference much slower than capture
        item = feed.get(timeout=1)
        assert item is not None
        assert item.tensor.shape == (1, 28, 28, 1)  # preprocessed on the feed's thread
        taken.append(int(item.frame.frame_id))
    feed.close()
    assert feed.dropped > 0
    assert taken == sorted(taken) and len(set(taken)) == 5
    assert source.produced - feed.dropped - len(taken) <= 2  # the rest were in flight


def test_replay_feed_blocks_instead_of_dropping() -> None:
    source = SlowSource()
    feed = FrameFeed(source, ModelRuntime.load(EDGE_MODEL), maxsize=2, newest_wins=False)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default
    try:
        feed.start()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)  # the GIL's hand-offs
    finally:
        sys.setswitchinterval(before)
    taken = []
    for _ in range(20):
        time.sleep(0.01)  # a consumer slower than the source: the bounded queue fills
        item = feed.get(timeout=1)
        assert item is not None
        taken.append(int(item.frame.frame_id))
    feed.close()
    assert feed.dropped == 0
    assert taken == list(range(1, 21))


def test_emitter_keeps_order_batches_what_waits_and_flushes_on_close() -> None:
    seen: list[int] = []
    batches: list[int] = []

    def slow_emit(items: list[int]) -> None:
        time.sleep(0.002)  # a slow sink, on purpose: the emitter's queue fills
        batches.append(len(items))
        seen.extend(items)

    emitter: Emitter[int] = Emitter(slow_emit, maxsize=4, batch=3)
    emitter.start()
    for n in range(50):
        emitter.put(n)
    emitter.close()
    assert seen == list(range(50))
    assert max(batches) == 3  # what waited went together, never more than the batch
    assert len(batches) < 50


def test_scene_gate_skips_static_frames() -> None:
    gate = SceneGate(threshold=2.0)
    still = frames(1)[0]
    assert gate.changed(still)
    assert not gate.changed(still)
    noisy = np.clip(still.astype(np.int16) + 1, 0, 255).astype(np.uint8)  # sensor noise
    assert not gate.changed(noisy)
    assert gate.changed(frames(2)[1])  # a different scene
    assert gate.skipped == 2
    assert GatingSettings().enabled is False


def test_picamera2_source_when_the_module_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picamera2 only exists on a Pi: a stand-in module checks the seam (configure, start,
    capture_array, stop); without the module the error names the package to install."""
    import sys
    import types

    with pytest.raises(SourceError, match="picamera2 package"):
        open_source(SourceSettings(kind="picamera2"))

    calls: list[str] = []

    class Picamera2:
        def create_video_configuration(self, main: dict[str, str]) -> dict[str, object]:
            assert main == {"format": "RGB888"}  # BGR in memory, as OpenCV expects
            return {"main": main}

        def configure(self, config: dict[str, object]) -> None:
            calls.append("configure")

        def start(self) -> None:
            calls.append("start")

        def capture_array(self) -> np.ndarray:
            return np.zeros((48, 64, 3), dtype=np.uint8)

        def stop(self) -> None:
            calls.append("stop")

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    source, live = open_source(SourceSettings(kind="picamera2"))
    frame = source.read()
    source.close()
    assert live and frame is not None and frame.image.shape == (48, 64, 3)
    assert calls == ["configure", "start", "stop"]


def test_a_folder_replays_sorted_or_in_a_seeded_order() -> None:
    def replay(seed: int | None) -> list[str]:
        source, _ = open_source(SourceSettings(path=EVAL_SAMPLE, shuffle_seed=seed))
        ids: list[str] = []
        while (frame := source.read()) is not None and len(ids) < 40:
            ids.append(frame.frame_id)
        return ids

    in_order = replay(None)
    assert in_order == sorted(in_order) and len({i.split("/")[0] for i in in_order}) == 1
    shuffled = replay(7)
    assert shuffled == replay(7) != replay(8)
    assert len({i.split("/")[0] for i in shuffled}) > 5  # the classes interleave
