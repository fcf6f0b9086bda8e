"""The notification channels: apprise (any service it knows, by URL), a JSON webhook and MQTT.

Each send either returns (delivered) or raises :class:`DeliveryError` with a sentence saying what
went wrong (the URL's scheme and host, never its password); the sender records it and retries.
Every attempt is bounded by ``alerts.timeout_s``, so a channel that hangs costs one timeout per
attempt, not a stuck sender.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from edgecascade.cloud.alerts.config import AlertsSection
from edgecascade.cloud.errors import DeliveryError
from edgecascade.shared.mqtt import Outgoing

Payload = dict[str, Any]
Publish = Callable[[Outgoing, float], None]  # publish and wait for the broker's ack, or raise


def channel_names(alerts: AlertsSection) -> list[str]:
    """The channels every alert event goes to, as stored on its deliveries."""
    names = [f"apprise:{i}" for i in range(len(alerts.apprise))]
    names += [f"webhook:{i}" for i in range(len(alerts.webhooks))]
    if alerts.mqtt_topic is not None:
        names.append("mqtt")
    return names


def redacted(url: str) -> str:
    """scheme://host[:port]/path of a URL: enough to tell which, without its credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def title_of(payload: Payload) -> str:
    state = "FIRING" if payload["state"] == "firing" else "resolved"
    return f"[EdgeCascade {state}] {payload['rule']}: {payload['site'] or ''}"


def send_apprise(url: str, payload: Payload, timeout_s: float) -> None:
    import apprise  # lazily: the CLI imports without it

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError(f"apprise does not understand the URL {redacted(url)}")
    logs: list[str] = []
    result = notifier.notify(
        body=f"{payload['message']}\n\n{json.dumps(payload, indent=2)}",
        title=title_of(payload),
        notify_type=(
            apprise.NotifyType.FAILURE
            if payload["state"] == "firing"
            else apprise.NotifyType.SUCCESS
        ),
        timeout=timeout_s,
        log_callback=lambda entry, _plugin: logs.append(entry.message),
        log_level=30,  # WARNING and worse: why it failed
    )
    if not result:
        why = "; ".join(logs[-3:]) or f"status {result.status.name}"
        raise DeliveryError(f"apprise {redacted(url)} failed: {why}")


def send_webhook(url: str, payload: Payload, timeout_s: float) -> None:
    """POST the alert as JSON; any 2xx is delivered."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "edgecascade-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook {redacted(url)} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook {redacted(url)} failed: {reason}") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {redacted(url)} answered {status}")


def mqtt_messages(topic: str, payload: Payload) -> list[Outgoing]:
    """Firing: the alert, retained (a late subscriber sees what fires). Resolved: the alert,
    not retained, then an empty retained message that clears the firing one."""
    where = f"{topic}/{payload['site'] or '-'}/{payload['rule']}/{payload['id']}"
    body = json.dumps(payload).encode()
    if payload["state"] == "firing":
        return [Outgoing(where, body, qos=1, retain=True)]
    return [Outgoing(where, body, qos=1), Outgoing(where, b"", qos=1, retain=True)]


class Channels:
    """Sends one delivery's payload through the channel it names."""

    def __init__(self, alerts: AlertsSection, publish: Publish | None) -> None:
        self.alerts = alerts
        self._publish = publish

    def send(self, channel: str, payload: Payload) -> None:
        kind, _, index = channel.partition(":")
        timeout = self.alerts.timeout_s
        if kind == "mqtt":
            if self.alerts.mqtt_topic is None or self._publish is None:
                raise DeliveryError("the MQTT channel is not configured in this process")
            for message in mqtt_messages(self.alerts.mqtt_topic, payload):
                self._publish(message, timeout)
            return
        urls = {"apprise": self.alerts.apprise, "webhook": self.alerts.webhooks}.get(kind)
        if urls is None or not index.isdigit() or int(index) >= len(urls):
            raise DeliveryError(f"channel {channel!r} is not in the settings (any more)")
        if kind == "apprise":
            send_apprise(urls[int(index)], payload, timeout)
        else:
            send_webhook(urls[int(index)], payload, timeout)
