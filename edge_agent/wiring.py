"""The agent's parts, each built by one function before anything starts.

:class:`edge_agent.agent.Agent` calls these in order in its constructor (model, source, feed,
outbox, link, sender, rollout), so every part exists for the agent's whole life and ``Agent.run``
only starts them, loops and stops them. Nothing here starts a thread or connects.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecascade.edge_agent.feed import FrameFeed
from edgecascade.edge_agent.gating import SceneGate
from edgecascade.edge_agent.models import EdgeModel
from edgecascade.edge_agent.rollout import RolloutClient
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.edge_agent.slots import ModelSlots
from edgecascade.edge_agent.sources import FrameSource
from edgecascade.shared.codec import encode
from edgecascade.shared.contract import spec_of
from edgecascade.shared.manifest import load_public_key
from edgecascade.shared.model_messages import ModelAckMessage, ModelChunkRequestMessage
from edgecascade.shared.mqtt import MessageHandler, MqttLink, Outgoing
from edgecascade.shared.outbox import CONFIRMED_CLASSES, Outbox
from edgecascade.shared.topics import Kind, ModelSub, topic, topic_filter

ACK = spec_of(Kind.MODEL, ModelSub.ACK)  # QoS and outbox class of the model acks we send
StateFn = Callable[[str], Outgoing]  # the agent's retained state message, "online"/"offline"


def open_feed(
    settings: AgentSettings, source: FrameSource, runtime: EdgeModel, *, live: bool
) -> FrameFeed:
    """Stage 1 of the frame pipeline (:mod:`edge_agent.feed`), not reading yet."""
    s = settings
    return FrameFeed(
        source,
        runtime,
        maxsize=s.source.queue_size if live else 2,
        newest_wins=live,  # replay sources lose nothing; live cameras keep the newest frame
        gate=SceneGate(s.gating.threshold, s.gating.measure) if s.gating.enabled else None,
    )


def open_outbox(settings: AgentSettings) -> Outbox:
    s = settings
    return Outbox(
        s.data_dir / "outbox.db",
        quota_bytes=int(s.outbox_quota_mb * 1024 * 1024),
        replay_window_s=s.outbox_replay_s,
        confirmed=CONFIRMED_CLASSES if s.confirm_s > 0 else (),
        synchronous=s.outbox_sync,
    )


def open_link(settings: AgentSettings, on_message: MessageHandler, state: StateFn) -> MqttLink:
    """The link to the site broker (not connected yet): the site gateway's state, our verdicts."""
    s = settings
    link = MqttLink(
        s.mqtt,
        f"{s.site}.{s.device}",
        on_message=on_message,
        will=state("offline"),
        birth=lambda: state("online"),
    )
    if s.gateway_id is not None:
        link.subscribe(topic(s.site, s.gateway_id, Kind.STATE, prefix=s.mqtt.prefix))
    link.subscribe(topic(s.site, s.device, Kind.VERDICT, prefix=s.mqtt.prefix))
    link.subscribe(topic(s.site, s.device, Kind.ACK, prefix=s.mqtt.prefix))
    link.subscribe(topic_filter(Kind.CMD, site=s.site, device=s.device, prefix=s.mqtt.prefix))
    return link


def open_rollout(
    settings: AgentSettings,
    slots: ModelSlots,
    link: MqttLink,
    outbox: Outbox,
    switch: Callable[[EdgeModel], None],
) -> RolloutClient:
    """Model offers and chunks in, requests and acks out; the switch happens between frames."""
    s = settings
    key = load_public_key(s.model_public_key) if s.model_public_key else None
    prefix = s.mqtt.prefix

    def ack(message: ModelAckMessage) -> None:
        wire = topic(s.site, s.device, Kind.MODEL, ModelSub.ACK, prefix=prefix)
        outbox.put(ACK.queue_class, Outgoing(wire, encode(message), qos=ACK.qos), message.msg_id)

    def request(message: ModelChunkRequestMessage) -> None:
        link.publish(
            Outgoing(
                topic(s.site, s.device, Kind.MODEL, ModelSub.REQUEST, prefix=prefix),
                encode(message),
            )
        )

    for sub in (ModelSub.OFFER, ModelSub.CHUNK):
        link.subscribe(topic(s.site, s.device, Kind.MODEL, sub, prefix=prefix))
    return RolloutClient(
        slots,
        key,
        ack=ack,
        request=request,
        switch=switch,
        threads=s.threads,
        accelerator=s.runtime.accelerator(),
    )
