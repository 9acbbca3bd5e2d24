"""An aiomqtt client from the ``[mqtt]`` settings: address, credentials, TLS and the last will.

Both the publisher and ``settlerd doctor`` connect through ``make_client``.
"""

from __future__ import annotations

import secrets
import ssl

import aiomqtt

from settlerd.config import MqttSettings
from settlerd.config.credentials import read_secret

from .topics import online_topic

# The broker declares us gone after 1.5 keepalives without traffic, which is when the last will fires.
KEEPALIVE_S = 30
# A PUBACK not back within this long means the connection is dead: reconnect and resend from the cursor.
PUBACK_TIMEOUT_S = 10.0
CLIENT_ID_RANDOM_BYTES = 8  # 64 bits: not guessable, and the id stays well under brokers' length limits


def make_client(
    mqtt: MqttSettings,
    node_id: str,
    *,
    role: str = "settlerd",
    last_will: bool = True,
    timeout: float = PUBACK_TIMEOUT_S,
) -> aiomqtt.Client:
    """The one way settlerd connects to the broker; ``role`` prefixes the client id.

    Raises ``CredentialError`` for an unreadable password file and ``OSError``/``ssl.SSLError`` for a bad CA
    file, before any connection is tried.
    """
    password = None
    if mqtt.password_file is not None:
        password = read_secret("mqtt.password_file", mqtt.password_file)
    tls_context = None
    if mqtt.tls:
        tls_context = ssl.create_default_context(cafile=str(mqtt.ca_file) if mqtt.ca_file else None)
    return aiomqtt.Client(
        hostname=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=password,
        # A fresh id per connection: a broker drops the older of two connections with one id, so a fixed,
        # guessable id let anyone knock the publisher off and flap `online`.
        identifier=f"{role}-{node_id}-{secrets.token_hex(CLIENT_ID_RANDOM_BYTES)}",
        # Nothing is left to the broker's session: after a reconnect the publisher resends from its cursor,
        # so a new id (and with it a new session) loses nothing.
        clean_session=True,
        keepalive=KEEPALIVE_S,
        timeout=timeout,
        tls_context=tls_context,
        will=aiomqtt.Will(online_topic(node_id), b"false", qos=1, retain=True) if last_will else None,
    )
