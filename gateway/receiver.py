"""The MQTT adapter: a persistent QoS 1 session whose PUBACKs wait for the store commit.

`clean_session=False` with a fixed client id makes the broker keep our
subscriptions and queue messages while we are away (MQTT 3.1.1 section 3.1.2.4);
`manual_ack=True` holds back each PUBACK until `Intake` has committed the
message (section 4.3.2), so a gateway killed at any instant loses nothing: the
broker redelivers what was not acknowledged, and the store's unique event id
makes the redelivery harmless.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract.address import parse_host_port
from gateway.intake import Message, Offer
from gateway.logs import log_event
from gateway.metrics import Metrics
from gateway.mqtt_socket import BufferedClient, missing_hooks

log = logging.getLogger("nps_edge.gateway.receiver")

KINDS = ("feedback", "telemetry", "status")


@dataclass(frozen=True)
class BrokerLogin:
    """The gateway's own broker login (MQTT 3.1.1 section 3.1.3.4-5) and TLS settings.

    `repr` leaves the password out, so logging this object cannot leak it."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


# CONNACK return codes 4 and 5 (section 3.2.2.3) and what the operator should do.
# Mosquitto 2 answers a wrong password, or an unknown user, with 5.
_CHECK_LOGIN = (
    "check broker_username and broker_password (NPS_EDGE_BROKER_PASSWORD or the config"
    " file) against the broker's password file"
)
REFUSED_HINTS = {
    "Bad user name or password": _CHECK_LOGIN,
    "Not authorized": _CHECK_LOGIN + " (Mosquitto 2 answers a wrong password with this code)",
}


def tls_failure(host: str, port: int, login: BrokerLogin, timeout: float = 5.0) -> str | None:
    """Why a TLS handshake with the broker fails (None if it succeeds or TCP is down):
    paho's reconnect loop swallows the error, so the first failure is diagnosed here."""
    context = ssl.create_default_context(cafile=str(login.ca) if login.ca else None)
    if login.cert and login.key:
        context.load_cert_chain(str(login.cert), str(login.key))
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as err:
        return f"broker certificate not trusted: {err.verify_message}"
    except ssl.SSLError as err:
        return f"TLS handshake failed: {err.reason or err}"
    except OSError:
        return None


def client_class(paho_client: type[mqtt.Client] = mqtt.Client) -> type[mqtt.Client]:
    """`BufferedClient` (one `recv` for many packets, one PUBACK packet per commit) where
    the installed paho has its hooks, else plain paho, said in the log: a paho upgrade
    slows receiving, never breaks it."""
    missing = missing_hooks(paho_client)
    if not missing:
        return BufferedClient
    log_event(
        log,
        logging.WARNING,
        "paho-mqtt lacks the hooks for buffered reads and batched PUBACKs: receiving with"
        " plain paho",
        paho_version=version("paho-mqtt"),
        missing=missing,
    )
    return paho_client


class Receiver:
    def __init__(
        self,
        broker: str,
        client_id: str,
        offer: Offer,
        metrics: Metrics,
        *,
        root: str,
        keepalive: int = 30,
        login: BrokerLogin | None = None,
        paho_client: type[mqtt.Client] = mqtt.Client,
    ) -> None:
        self.host, self.port = parse_host_port(broker)
        self.offer = offer
        self.metrics = metrics
        self.root = root.rstrip("/")
        self.keepalive = keepalive
        self.connected = threading.Event()
        self._generation = 0
        self._taking = True
        self.client = client_class(paho_client)(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.login = login or BrokerLogin()
        if self.login.username:
            self.client.username_pw_set(self.login.username, self.login.password)
        if self.login.tls:
            # Verification always on: CERT_REQUIRED and the host name checked (paho's
            # default, never tls_insecure_set); the broker's CA from broker_ca, else the
            # system's trust store.
            self.client.tls_set(
                ca_certs=str(self.login.ca) if self.login.ca else None,
                certfile=str(self.login.cert) if self.login.cert else None,
                keyfile=str(self.login.key) if self.login.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        self._refused: str | None = None
        self.refused = threading.Event()
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_connect_fail = self._on_connect_fail
        self._failed_connects = 0
        self.subscribed = threading.Event()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop_taking(self) -> None:
        """Ignore further messages: not acknowledged, so the broker keeps them for next time."""
        self._taking = False

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish one message (QoS 1: the command relay); False when not connected, to
        retry later."""
        return self.publish_all([(topic, payload)], qos=qos)

    def publish_all(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> bool:
        """Publish a round (the acks: gateway/acks.py), at QoS 0 as one packet where paho
        has the hook (gateway/mqtt_socket.py); False when not all were taken, to retry later."""
        if not self.connected.is_set():
            return False
        if qos == 0 and isinstance(self.client, BufferedClient):
            return self.client.publish_all(messages)
        return all(
            self.client.publish(topic, payload, qos=qos).rc == mqtt.MQTT_ERR_SUCCESS
            for topic, payload in messages
        )

    def ack(self, messages: Sequence[Message]) -> None:
        """PUBACK a committed batch's messages that came on the current connection, in
        one packet where paho has the hook (gateway/mqtt_socket.py).

        A message from an earlier connection is redelivered by the broker on this
        one (with DUP set); the store sees its id again and it is acknowledged then.
        QoS 0 needs none, and none comes at QoS 2: we subscribe at QoS 1, the most
        the broker then delivers (MQTT 3.1.1 section 3.8.4).
        """
        mids = [m.mid for m in messages if m.conn == self._generation and m.qos == 1]
        if isinstance(self.client, BufferedClient):
            self.client.ack_all(mids)
        else:
            for mid in mids:
                self.client.ack(mid, 1)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self.refused.set()
            if str(reason) != self._refused:  # once, not on every retry
                self._refused = str(reason)
                log_event(
                    log,
                    logging.ERROR,
                    "broker refused the gateway's login",
                    broker=f"{self.host}:{self.port}",
                    username=self.login.username,
                    reason=str(reason),
                    what_to_do=REFUSED_HINTS.get(
                        str(reason), "see the broker's log for why it refused"
                    ),
                )
            return
        self._refused = None
        self.refused.clear()
        self._generation += 1
        self._failed_connects = 0
        self.connected.set()
        self.metrics.broker_connected.set(1)
        client.subscribe([(f"{self.root}/+/{kind}", 1) for kind in KINDS])
        log_event(
            log,
            logging.INFO,
            "connected to broker",
            broker=f"{self.host}:{self.port}",
            session_present=bool(flags.session_present),
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """paho retries by itself (1 s to 15 s apart): log the first two, then every sixth."""
        self._failed_connects += 1
        if self._failed_connects in (1, 2) or self._failed_connects % 6 == 0:
            cause = tls_failure(self.host, self.port, self.login) if self.login.tls else None
            log_event(
                log,
                logging.ERROR if cause else logging.WARNING,
                "cannot connect to the broker, retrying",
                broker=f"{self.host}:{self.port}",
                attempts=self._failed_connects,
                **(
                    {
                        "tls": cause,
                        "what_to_do": "broker_ca must be the CA that signed the"
                        " broker's certificate, issued for the host name in `broker`",
                    }
                    if cause
                    else {}
                ),
            )

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log_event(log, logging.ERROR, "broker refused subscription", reasons=failed)
            return
        self.subscribed.set()
        log_event(log, logging.INFO, "subscribed", filters=[f"{self.root}/+/{k}" for k in KINDS])

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.metrics.broker_connected.set(0)
        log_event(log, logging.WARNING, "disconnected from broker", reason=str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._taking:
            self.offer(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self._generation)
