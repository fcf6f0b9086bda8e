"""The gateway's parts that face the brokers: two disk outboxes, two MQTT links, two senders.

Built once by :class:`gateway.forwarder.Gateway` before anything starts, so every part exists (and
is typed as existing) for the whole life of the gateway; ``Gateway.run`` only starts them, loops and
stops them. What each link subscribes is declared by the gateway (``Gateway._subscribe``).
"""

from __future__ import annotations

from collections.abc import Callable

from edgecascade.gateway.aggregate import ResultBatcher
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.contract import OutboxClass
from edgecascade.shared.mqtt import MessageHandler, MqttLink, Outgoing
from edgecascade.shared.outbox import (
    CONFIRMED_CLASSES,
    DEFAULT_CLASSES,
    ClassPolicy,
    Outbox,
    OutboxSender,
)
from edgecascade.shared.topics import Kind, topic

UPLINK_CLASSES: dict[str, ClassPolicy] = {
    **DEFAULT_CLASSES,
    OutboxClass.MODEL: ClassPolicy(priority=1, ttl_s=7 * 86_400.0),
    OutboxClass.DEAD_LETTER: ClassPolicy(priority=2, ttl_s=7 * 86_400.0),
}
DOWNLINK_CLASSES: dict[str, ClassPolicy] = {
    OutboxClass.VERDICT: ClassPolicy(priority=0, ttl_s=6 * 3600.0),
    OutboxClass.MODEL: ClassPolicy(priority=1, ttl_s=6 * 3600.0),
}

StateFn = Callable[[str], Outgoing]  # the gateway's retained state message, "online"/"offline"


def cloud_topic(
    settings: GatewaySettings, kind: Kind, sub: str | None = None, device: str | None = None
) -> str:
    """A topic on the cloud broker, of the gateway itself unless ``device`` is given."""
    s = settings
    return topic(s.site, device or s.gateway_id, kind, sub, prefix=s.cloud_mqtt.prefix)


def open_outboxes(settings: GatewaySettings) -> tuple[Outbox, Outbox]:
    """The uplink (site -> cloud) and downlink (cloud -> site) outboxes, opened on disk."""
    s = settings
    quota = int(s.outbox_quota_mb * 1024 * 1024)
    uplink = Outbox(
        s.data_dir / "outbox.db",
        classes=UPLINK_CLASSES,
        quota_bytes=quota,
        dedup_window_s=s.dedup_window_s,
        replay_window_s=s.outbox_replay_s,
        confirmed=CONFIRMED_CLASSES if s.outbox_confirm_s > 0 else (),
        synchronous=s.outbox_sync,
    )
    downlink = Outbox(
        s.data_dir / "downlink.db",
        classes=DOWNLINK_CLASSES,
        quota_bytes=quota,
        dedup_window_s=s.dedup_window_s,
        replay_window_s=s.outbox_replay_s,
        synchronous=s.outbox_sync,
    )
    return uplink, downlink


def open_links(
    settings: GatewaySettings,
    *,
    from_site: MessageHandler,
    from_cloud: MessageHandler,
    state: StateFn,
) -> tuple[MqttLink, MqttLink]:
    """The site and cloud links (not connected yet), both acknowledging by hand."""
    s = settings
    cloud = MqttLink(
        s.cloud_mqtt,
        f"{s.site}.{s.gateway_id}.uplink",
        on_message=from_cloud,
        manual_ack=True,
        will=state("offline"),
        birth=lambda: state("online"),
    )
    site = MqttLink(
        s.site_mqtt,
        f"{s.site}.{s.gateway_id}.intake",
        on_message=from_site,
        manual_ack=True,
        # Devices publish only while this retained state says online: it is published after
        # the subscriptions, so "online" means nothing sent to the site broker is lost.
        will=state("offline"),
        birth=lambda: state("online"),
    )
    return site, cloud


def open_senders(
    settings: GatewaySettings,
    uplink: Outbox,
    downlink: Outbox,
    site: MqttLink,
    cloud: MqttLink,
    batcher: ResultBatcher,
) -> list[OutboxSender]:
    """The uplink sender (results coalesced into batches) and the downlink sender."""
    s = settings
    return [
        OutboxSender(
            uplink,
            cloud,
            batch=s.batch.max_results,
            coalesce=batcher,
            linger_s=s.batch.linger_ms / 1000,
            confirm_after_s=s.outbox_confirm_s,
        ),
        OutboxSender(downlink, site),
    ]
