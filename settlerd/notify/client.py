"""An aiomqtt client from the ``[mqtt]`` settings: address, credentials, TLS and the last will."""

from __future__ import annotations

import ssl

import aiomqtt

from settlerd.config import Settings
from settlerd.credentials import read_secret

from .topics import online_topic

# The broker declares us gone after 1.5 keepalives without traffic, which is when the last will fires.
KEEPALIVE_S = 30
# A PUBACK not back within this long means the connection is dead: reconnect and resend from the cursor.
PUBACK_TIMEOUT_S = 10.0


def make_client(settings: Settings) -> aiomqtt.Client:
    mqtt = settings.mqtt
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
        identifier=f"settlerd-{settings.node_id}",
        # Nothing is left to the broker's session: after a reconnect the publisher resends from its cursor.
        clean_session=True,
        keepalive=KEEPALIVE_S,
        timeout=PUBACK_TIMEOUT_S,
        tls_context=tls_context,
        will=aiomqtt.Will(online_topic(settings.node_id), b"false", qos=1, retain=True),
    )
