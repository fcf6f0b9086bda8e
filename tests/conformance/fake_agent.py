"""A deliberately broken agent for the suite's negative tests, written the way a foreign agent
would be: plain paho and the ``EC_CONFORMANCE_*`` variables.

``python fake_agent.py no-lwt``: online state, retained, but no last will.
``python fake_agent.py accepts-any-offer``: a last will, and ``applied`` for every offer, signed
or not, expired or replayed.
``python fake_agent.py ignores-acks``: a last will, and one result sent again every half second
whatever the gateway acknowledges.
"""

from __future__ import annotations

import os
import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edgecascade.shared.codec import decode, encode
from edgecascade.shared.messages import ModelRef, Prediction, ResultMessage, StateMessage
from edgecascade.shared.model_messages import ModelAckMessage, ModelOfferMessage
from edgecascade.shared.topics import Kind, ModelSub, Topic, topic


def env(name: str) -> str:
    return os.environ[f"EC_CONFORMANCE_{name}"]


def main(mode: str) -> None:
    site, device, prefix = env("SITE"), env("DEVICE"), env("PREFIX")

    def wire(kind: Kind, sub: str | None = None) -> str:
        return topic(site, device, kind, sub, prefix=prefix)

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=env("USERNAME"), protocol=paho.MQTTv5
    )
    client.username_pw_set(env("USERNAME"), env("PASSWORD"))
    if mode != "no-lwt":
        client.will_set(wire(Kind.STATE), encode(StateMessage(status="offline")), 1, retain=True)

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe(wire(Kind.MODEL, ModelSub.OFFER), qos=1)
        c.publish(wire(Kind.STATE), encode(StateMessage(status="online")), 1, retain=True)

    def on_message(c: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        offer = decode(Topic.parse(message.topic), bytes(message.payload)).message
        if isinstance(offer, ModelOfferMessage) and mode == "accepts-any-offer":
            m = offer.manifest
            ack = ModelAckMessage(
                rollout_id=offer.rollout_id, version=m.version, sha256=m.sha256, status="applied"
            )
            c.publish(wire(Kind.MODEL, ModelSub.ACK), encode(ack), 1)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(env("BROKER_HOST"), int(env("BROKER_PORT")))
    client.loop_start()
    result = ResultMessage(
        frame_id="frame-1",
        captured_at=time.time(),
        model=ModelRef(name="fake", version="1"),
        top=[Prediction(index=0, label="a", score=0.5)],
    )
    while True:
        if mode == "ignores-acks":
            client.publish(wire(Kind.RESULT), encode(result), 1)
        time.sleep(0.5)


if __name__ == "__main__":
    main(sys.argv[1])
