"""A flooding device for ``edgecascade bench gateway``: a process of its own, as a device is.

Publishes valid result messages of one device at QoS 1, at a rate (or as fast as the broker
acknowledges them), until its standard input closes; then writes, as JSON, the message ids it
published, how long it ran and the CPU time it (and its ``mosquitto_pub``) took. Run as
``python -m edgecascade.benchmarks.flood_device``; the bench starts it (:class:`FloodDevice`).

It is a process, not a thread of the bench, because a device does not share the measuring process's
interpreter lock: as a thread, the flood's own Python work delayed the bench's paced publisher and
its subscriber, which time the neighbours. At a rate it publishes through Mosquitto's own C client
(``mosquitto_pub -l``, one message a line) fed by this process, each message one encoded result
with its message id replaced: a device's cost of producing and sending results is not what the
bench measures, and on two shared cores every cycle the flooder spends is taken from the gateway,
the broker and the neighbours (a paho publisher spends more CPU a message than the gateway does
refusing it). As fast as acknowledged, or where ``mosquitto_pub`` (Debian's ``mosquitto-clients``)
is missing, it publishes through paho. It prints ``ready`` once it can publish, so the flood starts
when asked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

FLOODER = "flooder"
WINDOW = 10_000  # outstanding QoS 1 messages, well under paho's 65,535 ids
CHUNK_S = 0.01  # mosquitto_pub gets this many seconds of the rate at a time


def flood(
    port: int, site: str, rate: float, stop: threading.Event, ready: threading.Event
) -> tuple[list[str], float]:
    """Publish until ``stop``; the ids published and the seconds it took."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.shared.codec import encode
    from edgecascade.shared.ids import new_message_id
    from edgecascade.shared.topics import Kind, topic

    wire = topic(site, FLOODER, Kind.RESULT)
    template = sample_result(0)
    payload = encode(template)
    mark = template.msg_id.encode()
    window = threading.Semaphore(WINDOW)
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-flooder", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = lambda *args: window.release()
    client.on_connect = lambda *args: ready.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.wait(30)
    ids: list[str] = []
    infos = []
    start = time.perf_counter()
    while not stop.is_set():
        if rate:
            pause = start + len(ids) / rate - time.perf_counter()
            if pause > 0.001:
                time.sleep(pause)
        if not window.acquire(timeout=1):
            continue
        msg_id = new_message_id()
        ids.append(msg_id)
        infos.append(client.publish(wire, payload.replace(mark, msg_id.encode()), qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    seconds = time.perf_counter() - start
    client.disconnect()  # first: it wakes paho's loop, which then ends at once
    client.loop_stop()
    return ids, seconds


def flood_through(
    binary: str, port: int, site: str, rate: float, stop: threading.Event, ready: threading.Event
) -> tuple[list[str], float]:
    """Publish until ``stop`` through Mosquitto's own client (``mosquitto_pub -l``: one message
    a line of its input, at QoS 1): the ids published and the seconds it took. Lines are written
    ``CHUNK_S`` worth at a time, at ``rate`` (above 0)."""
    from edgecascade.benchmarks.messages import sample_result
    from edgecascade.processes import die_with_parent
    from edgecascade.shared.codec import encode
    from edgecascade.shared.ids import new_message_id
    from edgecascade.shared.topics import Kind, topic

    template = sample_result(0)
    payload, mark = encode(template), template.msg_id.encode()
    argv = [binary, "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", "1", "-M", "1000"]
    argv += ["-i", "bench-flooder", "-t", topic(site, FLOODER, Kind.RESULT), "-l", "--quiet"]
    client = subprocess.Popen(argv, stdin=subprocess.PIPE, preexec_fn=die_with_parent)
    assert client.stdin is not None
    ready.set()  # lines wait in the pipe until it is connected
    ids: list[str] = []
    start = time.perf_counter()
    while not stop.is_set():
        due = round(rate * (time.perf_counter() - start + CHUNK_S))
        lines = []
        while len(ids) < due:
            msg_id = new_message_id()
            ids.append(msg_id)
            lines.append(payload.replace(mark, msg_id.encode()) + b"\n")
        client.stdin.write(b"".join(lines))
        client.stdin.flush()
        stop.wait(CHUNK_S)
    client.stdin.close()  # it sends what it has read, then ends
    client.wait(60)
    return ids, time.perf_counter() - start


class FloodDevice:
    """The bench's handle on a flooding device process: :meth:`start` returns once it is
    connected and publishing, :meth:`stop` ends it and reads :attr:`ids` and :attr:`seconds`."""

    def __init__(self, port: int, site: str, rate: float, out: Path) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "edgecascade.benchmarks.flood_device",
            "--port",
            str(port),
            "--site",
            site,
            "--rate",
            f"{rate:g}",
            "--out",
            str(out),
        ]
        self.out = out
        self.ids: list[str] = []
        self.seconds = 0.0
        self.cpu_s = 0.0  # its CPU time in all, start-up included
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        from edgecascade.processes import die_with_parent

        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # blocks until connected (or the process ended)
        if line.strip() != b"ready":
            self.stop(timeout)
            raise RuntimeError(f"the flooding device did not start: {line!r}")

    def stop(self, timeout: float = 120.0) -> None:
        if self._proc is None:
            return
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()  # its signal to stop
        self._proc.wait(timeout)
        self._proc.stdout.close()
        self._proc = None
        if self.out.exists():
            report = json.loads(self.out.read_text())
            self.ids, self.seconds, self.cpu_s = report["ids"], report["seconds"], report["cpu_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="results/s; 0: as fast as acked")
    parser.add_argument("--out", type=Path, required=True, help="the JSON written at the end")
    args = parser.parse_args(argv)
    stop, ready = threading.Event(), threading.Event()

    def announce() -> None:
        if ready.wait(30):
            sys.stdout.write("ready\n")
            sys.stdout.flush()

    def watch_stdin() -> None:
        sys.stdin.read()  # until the bench closes it
        stop.set()

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=watch_stdin, daemon=True).start()
    binary = shutil.which("mosquitto_pub")
    # mosquitto_pub (Debian's mosquitto-clients) reads lines at a rate; as fast as acknowledged,
    # or without it, paho in this process.
    if binary is None or not args.rate:
        ids, seconds = flood(args.port, args.site, args.rate, stop, ready)
    else:
        ids, seconds = flood_through(binary, args.port, args.site, args.rate, stop, ready)
    spent = os.times()  # this process's CPU and its mosquitto_pub's (waited for)
    cpu_s = spent.user + spent.system + spent.children_user + spent.children_system
    args.out.write_text(json.dumps({"ids": ids, "seconds": seconds, "cpu_s": cpu_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
