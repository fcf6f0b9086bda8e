"""Confirmations between hops: the ``ack`` messages a receiver sends for what it committed.

Used by the gateway (to the devices, on the site broker) and the cloud's ingest (to the gateway,
on the cloud broker); the senders' outboxes forget what is confirmed (:meth:`Outbox.confirm`).
"""

from __future__ import annotations

from edgecascade.shared.codec import encode
from edgecascade.shared.contract import spec_of
from edgecascade.shared.messages import AckMessage
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, topic

ACK = spec_of(Kind.ACK)
MAX_IDS = 1000  # AckMessage's limit


def ack_wires(site: str, device: str, msg_ids: list[str], prefix: str) -> list[Outgoing]:
    """``msg_ids`` confirmed to ``device`` of ``site``, in acks of at most :data:`MAX_IDS`."""
    wire = topic(site, device, Kind.ACK, prefix=prefix)
    return [
        Outgoing(wire, encode(AckMessage(msg_ids=msg_ids[i : i + MAX_IDS])), qos=ACK.qos)
        for i in range(0, len(msg_ids), MAX_IDS)
    ]
