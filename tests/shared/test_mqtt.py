"""MqttLink against a real Mosquitto: CONNACK handling, birth/LWT, resubscribe after a restart."""

from __future__ import annotations

import threading

from edgecascade.brokers import MosquittoBroker, free_port
from edgecascade.shared.config import MqttSettings
from edgecascade.shared.mqtt import MqttLink, Outgoing, Received
from tests.utils.mqtt import wait_until


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()

    def __call__(self, message: Received) -> None:
        with self.lock:
            self.messages.append(message)

    def payloads(self, topic: str) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.messages if m.topic == topic]


def test_not_connected_when_broker_refuses(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    broker = MosquittoBroker(tmp_path / "auth", extra_conf="")
    conf = broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    broker.conf.write_text(conf)
    broker.start()
    try:
        link = MqttLink(broker.settings, "refused", persistent=False)
        link.start()
        assert not link.wait_connected(1.5)
        assert not link.connected
        link.stop()
    finally:
        broker.stop()


def test_nothing_listening_is_not_connected() -> None:
    link = MqttLink(MqttSettings(port=free_port()), "nobody", persistent=False)
    link.start()
    assert not link.wait_connected(1.0)
    link.stop()


def test_birth_lwt_and_resubscribe_after_restart(broker: MosquittoBroker) -> None:
    watcher_inbox = Inbox()
    watcher = MqttLink(broker.settings, "watcher", on_message=watcher_inbox)
    watcher.subscribe("state/#")
    watcher.subscribe("data")
    watcher.connect()

    device = MqttLink(
        broker.settings,
        "device",
        will=Outgoing("state/device", b"offline", retain=True),
        birth=lambda: Outgoing("state/device", b"online", retain=True),
    )
    device.connect()
    assert wait_until(lambda: watcher_inbox.payloads("state/device") == [b"online"])

    broker.kill()
    assert wait_until(lambda: not watcher.connected and not device.connected)
    broker.start()
    assert wait_until(lambda: watcher.connected and device.connected, timeout=15)
    assert watcher.connects == 2 and device.connects == 2
    # The watcher re-subscribed by itself: a new message reaches it.
    info = device.publish(Outgoing("data", b"after-restart"))
    assert device.confirm(info, 5)
    assert wait_until(lambda: watcher_inbox.payloads("data") == [b"after-restart"])
    # The device re-announced itself on reconnect (retained birth replaces any LWT).
    assert wait_until(lambda: watcher_inbox.payloads("state/device")[-1] == b"online")

    # A device that dies without DISCONNECT: the broker publishes its LWT.
    dying = MqttLink(
        broker.settings,
        "dying",
        will=Outgoing("state/dying", b"offline", retain=True),
        birth=lambda: Outgoing("state/dying", b"online", retain=True),
    )
    dying.connect()
    sock = dying._client.socket()
    assert sock is not None
    sock.close()  # simulate a dead process: no DISCONNECT packet
    assert wait_until(lambda: watcher_inbox.payloads("state/dying")[-1:] == [b"offline"], 60)
    dying.stop()

    # A clean stop publishes the farewell state itself.
    device.stop(farewell=Outgoing("state/device", b"offline", retain=True))
    assert wait_until(lambda: watcher_inbox.payloads("state/device")[-1] == b"offline")
    watcher.stop()


def test_manual_ack_redelivers_unacked_messages(broker: MosquittoBroker) -> None:
    received = Inbox()
    consumer = MqttLink(broker.settings, "consumer", on_message=received, manual_ack=True)
    consumer.subscribe("jobs")
    consumer.connect()
    producer = MqttLink(broker.settings, "producer", persistent=False)
    producer.connect()
    assert producer.confirm(producer.publish(Outgoing("jobs", b"job-1")), 5)
    assert wait_until(lambda: received.payloads("jobs") == [b"job-1"])
    consumer.stop()  # never acked

    again = Inbox()
    consumer2 = MqttLink(broker.settings, "consumer", on_message=again, manual_ack=True)
    consumer2.subscribe("jobs")
    consumer2.connect()
    assert wait_until(lambda: again.payloads("jobs") == [b"job-1"])
    consumer2.ack(again.messages[0])
    consumer2.stop()
    producer.stop()
