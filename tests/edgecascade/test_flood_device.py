"""The bench's flooding device: a process of its own that publishes valid results of one device
until told to stop, and reports every id it published and the CPU it took."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgecascade.benchmarks.flood_device import FLOODER, FloodDevice
from edgecascade.brokers import MosquittoBroker
from edgecascade.shared.topics import Kind, Topic, topic_filter
from tests.utils.mqtt import wait_until


def _collect(broker: MosquittoBroker, into: dict[str, str]) -> paho.Client:
    """A subscriber recording each result's id and the device of its topic."""
    lock = threading.Lock()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with lock:
            into[json.loads(msg.payload)["msg_id"]] = Topic.parse(msg.topic).device

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic_filter(Kind.RESULT, site="s1"), qos=1)
    client.loop_start()
    return client


@pytest.mark.parametrize("rate", [400.0, 0.0], ids=["mosquitto_pub", "paho"])
def test_every_published_id_is_reported_and_arrives(
    broker: MosquittoBroker, tmp_path: Path, rate: float
) -> None:
    if rate and shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub (mosquitto-clients) is not installed")
    arrived: dict[str, str] = {}
    client = _collect(broker, arrived)
    try:
        device = FloodDevice(broker.port, "s1", rate, tmp_path / "flood.json")
        device.start()
        assert wait_until(lambda: len(arrived) >= 50, timeout=10)
        device.stop()
        assert len(device.ids) >= 50 and len(set(device.ids)) == len(device.ids)
        assert wait_until(lambda: set(device.ids) <= set(arrived), timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert set(arrived.values()) == {FLOODER}
    assert device.seconds > 0 and device.cpu_s > 0
    if rate:  # paced: it ran about as long as it took to publish them
        assert len(device.ids) <= rate * device.seconds + rate * 0.05
