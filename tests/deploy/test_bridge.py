"""The documented Mosquitto bridge (deploy/mosquitto/site-bridge.conf) works on real Mosquitto.

The bridge section of the file, with only the address, credentials and TLS pointed at a local
cloud broker, joins a real site broker to a real cloud broker: device traffic goes up, commands
and verdicts come down, other sites' topics do not cross, and what is published during a cloud
outage is delivered once the cloud is back (held in the site broker's queue, as documented).
"""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.codec import encode
from edgecascade.shared.messages import CommandMessage, ResultMessage
from edgecascade.shared.topics import Kind, topic
from tests.utils.factories import make_result, make_state
from tests.utils.mqtt import wait_until
from tests.utils.paths import REPO

CONF = REPO / "deploy" / "mosquitto" / "site-bridge.conf"
LOCAL_ONLY = ("address", "remote_username", "remote_password", "bridge_cafile", "restart_timeout")


def bridge_section(cloud_port: int) -> str:
    """The file's bridge section, aimed at the local cloud broker without TLS or credentials."""
    lines = CONF.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("connection "))
    kept = [line for line in lines[start:] if not line.startswith(LOCAL_ONLY)]
    # The test broker allows unlimited in-flight messages; the file's bound matters (see there).
    inflight = next(line for line in lines if line.startswith("max_inflight_messages "))
    return "\n".join([inflight, *kept, f"address 127.0.0.1:{cloud_port}", "restart_timeout 1"])


class Collector:
    """A persistent-session subscriber that records (topic, retained, payload) as they arrive."""

    def __init__(self, port: int, name: str, topic_filter: str) -> None:
        self.received: list[tuple[str, bool, bytes]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bool(msg.retain), bytes(msg.payload)))

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _, _ in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publisher(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def result() -> bytes:
    message: ResultMessage = make_result("site1", "cam1")
    return encode(message)


def test_the_bridge_carries_the_site_both_ways_and_holds_an_outage(tmp_path: Path) -> None:
    cloud = MosquittoBroker(tmp_path / "cloud")
    site = MosquittoBroker(tmp_path / "site", extra_conf=bridge_section(cloud.port))
    with cloud, site:  # stopped however the test ends
        exercise_the_bridge(cloud, site)


def exercise_the_bridge(cloud: MosquittoBroker, site: MosquittoBroker) -> None:
    up = Collector(cloud.port, "cloud-ingest", "ec/v1/#")
    down = Collector(site.port, "cam1", "ec/v1/site1/cam1/cmd/#")
    pub_site, pub_cloud = publisher(site.port), publisher(cloud.port)
    try:
        bridge_up = wait_until(lambda: _crossed(pub_site, up, "probe", timeout=0.2), timeout=20)
        assert bridge_up, "the bridge is not up"

        # Up: a retained state and results from site1; nothing from another site.
        state = encode(make_state())
        pub_site.publish(topic("site1", "cam1", Kind.STATE), state, qos=1, retain=True)
        results = topic("site1", "cam1", Kind.RESULT)
        for _ in range(20):
            pub_site.publish(results, result(), qos=1)
        pub_site.publish(topic("site2", "cam9", Kind.RESULT), result(), qos=1)
        assert _crossed(pub_site, up, "after-site2")  # what was sent before it crossed before it
        assert up.topics().count(results) == 20
        late = Collector(cloud.port, "late", topic("site1", "cam1", Kind.STATE))  # retained there
        assert wait_until(lambda: [r for _, r, _ in late.received] == [True], timeout=10)
        late.close()
        assert topic("site2", "cam9", Kind.RESULT) not in up.topics()

        # Down: a command published in the cloud reaches the device.
        cmd = topic("site1", "cam1", Kind.CMD, "resync")
        command = CommandMessage(correlation=make_result().msg_id)  # any fresh message id
        pub_cloud.publish(cmd, encode(command), qos=1)
        assert wait_until(lambda: cmd in down.topics(), timeout=10)

        # Outage: the cloud broker stops; the site broker queues for the bridge; nothing lost.
        cloud.stop()
        infos = [pub_site.publish(results, result(), qos=1) for _ in range(50)]
        for info in infos:
            info.wait_for_publish(timeout=10)
        cloud.start()
        assert wait_until(lambda: up.topics().count(results) == 70, timeout=30)
        assert _crossed(pub_site, up, "after-outage")  # a copy would have crossed before it
        assert up.topics().count(results) == 70  # and no more: each exactly once here
    finally:
        for client in (pub_site, pub_cloud):
            client.loop_stop()
            client.disconnect()
        up.close()
        down.close()


def _crossed(pub: paho.Client, up: Collector, device: str, timeout: float = 10.0) -> bool:
    """Send a (not retained) state message from ``device`` through the bridge; True once it
    crossed. Messages travel the bridge in order, so what was sent before it crossed before it."""
    probe = topic("site1", device, Kind.STATE)
    pub.publish(probe, encode(make_state()), qos=1)
    return wait_until(lambda: probe in up.topics(), timeout=timeout)
