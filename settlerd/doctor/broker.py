"""Broker check: connect to the configured MQTT broker with the configured credentials and TLS, then leave.

The doctor connects under its own client id and without a last will: reusing the daemon's id would make the
broker drop the running daemon's session and publish its "offline" will to every venue.
"""

from __future__ import annotations

import asyncio
import ssl

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from settlerd.adapters import Check, CheckStatus
from settlerd.config import MqttSettings
from settlerd.config.credentials import CredentialError
from settlerd.notify.client import make_client

# A broker on the same network accepts a connection well within this; a firewalled port would hang longer.
CONNECT_TIMEOUT_S = 5.0
# MQTT 3.1.1 CONNACK codes and their MQTT 5 reason codes for a refused user name or password.
AUTH_REFUSED = {4, 5, 134, 135}


async def diagnose_broker(mqtt: MqttSettings, node_id: str) -> Check:
    if not mqtt.enabled:
        return Check("mqtt", CheckStatus.OK, "disabled (mqtt.enabled = false): no status is published")
    where = f"{mqtt.host}:{mqtt.port}{' over TLS' if mqtt.tls else ''}"
    try:
        client = make_client(
            mqtt, node_id, role="settlerd-doctor", last_will=False, timeout=CONNECT_TIMEOUT_S
        )
    except (CredentialError, OSError, ssl.SSLError) as exc:
        fix = "fix mqtt.password_file" if isinstance(exc, CredentialError) else "fix mqtt.ca_file"
        return Check("mqtt", CheckStatus.FAIL, f"cannot prepare the connection to {where}: {exc}", fix)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S), client:
            pass
    except aiomqtt.MqttCodeError as exc:
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if code in AUTH_REFUSED:
            return Check(
                "mqtt",
                CheckStatus.FAIL,
                f"the broker at {where} refused our credentials ({exc})",
                "check mqtt.username and mqtt.password_file against the broker's password file and ACL",
            )
        return Check(
            "mqtt", CheckStatus.FAIL, f"the broker at {where} refused us: {exc}", "check the broker's log"
        )
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        found = f"no CONNACK within {CONNECT_TIMEOUT_S:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
        fix = "start the broker or fix mqtt.host and mqtt.port"
        if mqtt.tls:
            fix += "; with TLS also mqtt.ca_file and that the host name matches the broker's certificate"
        return Check("mqtt", CheckStatus.FAIL, f"cannot connect to {where}: {found}", fix)
    user = f" as {mqtt.username}" if mqtt.username else ""
    return Check("mqtt", CheckStatus.OK, f"connected to {where}{user}")
