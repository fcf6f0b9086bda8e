"""The one MQTT client wrapper: paho-mqtt 2.x, MQTT 5, used by every component.

:class:`MqttLink` owns one broker connection. It marks itself connected only after a successful
CONNACK; on every (re)connect it first (re)subscribes, then publishes the retained birth message.
The broker handles one connection's packets in order, so whoever sees the birth knows the
subscriptions are in place: "online" means "listening".
The broker publishes the retained LWT when the connection drops without a DISCONNECT, and
:meth:`stop` publishes the same offline state itself before a clean disconnect. paho reconnects
in its network thread with exponential backoff between ``reconnect_min`` and ``reconnect_max``.

Callbacks run on paho's network thread: keep ``on_message`` short, or hand work to a queue. With
``manual_ack=True`` a QoS 1 message is acknowledged only when the caller calls :meth:`ack`, after it
has stored the message; a crash before that makes the broker deliver it again.

With ``settings.uses_tls`` the connection is TLS (1.2 or later) and the broker's certificate must
chain to ``ca_file`` (or the system's CAs) and name the host; a client certificate is presented
when ``cert_file``/``key_file`` are set. Unreadable files are a :class:`ConfigError` at
construction; a handshake the broker fails is named by :meth:`MqttLink.connect`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgecascade.shared.config import MqttSettings
from edgecascade.shared.errors import BrokerError, ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A message as it arrived: plain values, no paho types."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


MessageHandler = Callable[[Received], None]


class MqttLink:
    """One MQTT 5 connection with birth/LWT, resubscription and reconnect."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        on_message: MessageHandler | None = None,
        will: Outgoing | None = None,
        birth: Callable[[], Outgoing] | None = None,
        manual_ack: bool = False,
        persistent: bool = True,
        max_inflight: int = 100,
        receive_maximum: int = 100,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._on_message = on_message
        self._birth = birth
        self._persistent = persistent
        self._receive_maximum = receive_maximum
        self._filters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._rejected: dict[int, str] = {}
        self._stopped = False  # after stop(): the socket pair is closed, nothing more is sent
        self.connects = 0
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        self._tls = tls_context(settings) if settings.uses_tls else None
        if self._tls is not None:
            self._client.tls_set_context(self._tls)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._client.reconnect_delay_set(
            int(max(1, settings.reconnect_min)), int(max(1, settings.reconnect_max))
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_publish = self._handle_publish

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho keeps retrying until :meth:`stop`."""
        self._stopped = False
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry if self._persistent else 0
        # How many unacknowledged QoS 1 messages the broker may send us at once.
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=not self._persistent,
            properties=props,
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def connect(self, timeout: float = 10.0) -> None:
        """:meth:`start` and wait for the first CONNACK; raises :class:`BrokerError` on timeout."""
        self.start()
        if not self.wait_connected(timeout):
            self.stop()
            why = self._tls_problem() if self._tls is not None else None
            raise BrokerError(
                f"no connection to MQTT broker {self.settings.host}:{self.settings.port} "
                f"within {timeout:.0f}s" + (f": TLS handshake failed: {why}" if why else "")
            )

    def _tls_problem(self) -> str | None:
        """Why a TLS handshake with the broker fails, if it does (paho's thread only retries)."""
        assert self._tls is not None
        address = (self.settings.host, self.settings.port)
        try:
            with (
                socket.create_connection(address, 5) as sock,
                self._tls.wrap_socket(sock, server_hostname=self.settings.host),
            ):
                return None
        except ssl.SSLCertVerificationError as exc:
            return f"certificate verify failed: {exc.verify_message}"
        except ssl.SSLError as exc:
            return str(exc.reason or exc)
        except OSError:
            return None  # not a TLS problem: the broker is not there

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, farewell: Outgoing | None = None, timeout: float = 2.0) -> None:
        """Publish ``farewell`` (the offline state) if connected, disconnect, stop the thread."""
        if farewell is not None and self.connected:
            try:
                info = self._client.publish(
                    farewell.topic, farewell.payload, farewell.qos, farewell.retain
                )
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                logger.warning("%s: could not publish offline state on stop", self.client_id)
        self._client.disconnect()
        self._client.loop_stop()
        # loop_start() opened a socket pair that only paho's __del__ closes; close it now so a
        # stopped link holds no descriptors (and garbage collection order cannot leak them).
        self._stopped = True
        self._client._reset_sockets(sockpair_only=True)
        self._connected.clear()

    # -- messaging -------------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        with self._lock:
            self._filters[topic_filter] = qos
        if self.connected:
            self._client.subscribe(topic_filter, qos)

    def publish(self, message: Outgoing, expiry: int | None = None) -> paho.MQTTMessageInfo:
        """Queue ``message``; the returned info tells when the broker acknowledged it."""
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = expiry
        return self._client.publish(
            message.topic, message.payload, message.qos, message.retain, properties=props
        )

    def confirm(self, info: paho.MQTTMessageInfo, timeout: float) -> bool:
        """Wait for the PUBACK of ``info``; True if the broker accepted it.

        Raises :class:`BrokerError` when the broker refused the message (a PUBACK failure
        reason such as "payload format invalid" or "quota exceeded"); returns False on timeout or
        disconnect.
        """
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        if not info.is_published():
            return False
        reason = self._rejected.pop(info.mid, None)
        if reason is not None:
            raise BrokerError(f"broker refused message on {self.client_id}: {reason}")
        return True

    def ack(self, message: Received) -> None:
        """Acknowledge a message received with ``manual_ack=True``. After :meth:`stop` this does
        nothing: the broker delivers the message again to the next session."""
        if self._stopped:
            return
        self._client.ack(message.mid, message.qos)

    # -- paho callbacks (network thread) ---------------------------------------------------------
    def _handle_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error(
                "%s: broker %s:%d refused connection: %s",
                self.client_id,
                self.settings.host,
                self.settings.port,
                reason_code,
            )
            return
        with self._lock:
            filters = list(self._filters.items())
        if filters:
            client.subscribe(filters)
        if self._birth is not None:
            birth = self._birth()
            client.publish(birth.topic, birth.payload, birth.qos, birth.retain)
        self.connects += 1
        logger.info(
            "%s: connected to %s:%d (session present: %s)",
            self.client_id,
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        self._connected.set()

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and reason_code.is_failure:
            logger.warning("%s: disconnected: %s", self.client_id, reason_code)
        elif was_connected:
            logger.info("%s: disconnected", self.client_id)

    def _handle_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        received = Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)
        try:
            self._on_message(received)
        except Exception:  # a handler bug must not kill paho's network thread
            logger.exception("%s: message handler failed for %s", self.client_id, msg.topic)

    def _handle_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure:
            self._rejected[mid] = str(reason_code)


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its handshake fails: paho leaves such a socket to the garbage collector
    (a ResourceWarning on every retry against a broker whose certificate we refuse)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """A client TLS context from ``settings``; :class:`ConfigError` names a file it cannot use."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.sslsocket_class = _ClosingSSLSocket
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if settings.ca_file is not None:
            context.load_verify_locations(cafile=str(settings.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.ca_file {settings.ca_file}: cannot load CA certificates: {exc}"
        ) from exc
    try:
        if settings.cert_file is not None and settings.key_file is not None:
            context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.cert_file {settings.cert_file} / key_file {settings.key_file}: "
            f"cannot load the client certificate: {exc}"
        ) from exc
    return context
