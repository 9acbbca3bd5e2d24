"""`make demo`: two desks settle a BTC-for-ETH trade with an atomic swap, on local chains, live.

It starts a local Bitcoin regtest node and a local EVM chain (anvil), two settlerd daemons (desk A and
desk B, each with its own wallet, keys and database), subscribes to both daemons' MQTT topics as a trading
venue would, agrees a trade through the HTTP API, and prints the settlement as it happens. Everything it
starts is stopped before it exits, also on Ctrl-C or failure (regtest/localnet.py does the starting and
stopping). Exit code 0 when both desks report the swap completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import aiomqtt
from localnet import (
    ADMIN_TOKEN,
    BTC_BLOCK_INTERVAL_S,
    EVM_BLOCK_INTERVAL_S,
    FINALITY_DEPTH,
    MQTT_HOST,
    MQTT_PORT,
    Daemon,
    Localnet,
    LocalnetError,
    btc,
    eth,
    localnet,
)

BTC_AMOUNT = 10_000_000  # 0.1 BTC in satoshi
ETH_AMOUNT = 10**18  # 1 ETH in wei
SATS_PER_BTC = Decimal(100_000_000)
WEI_PER_ETH = Decimal(10**18)
SETTLE_TIMEOUT_S = 180.0  # a swap settles in seconds here; this only bounds a broken run
MQTT_CATCH_UP_S = 10.0  # the last retained status reaches the venue right after the daemon's own event


class Timeline:
    """Prints one line per event, numbered by seconds since the trade was agreed."""

    def __init__(self, net: Localnet, names: Mapping[str, str], legs: list[dict[str, Any]]) -> None:
        self.net = net
        self.names = names  # node_id -> "desk A"
        self.legs = {leg["leg"]: leg for leg in legs}
        self.start = time.monotonic()
        self.mqtt_counts: dict[str, int] = {}
        self.mqtt_status: dict[str, str] = {}  # the last status each desk's retained topic carried
        self.venue_saw_completion = asyncio.Event()

    def stamp(self) -> str:
        return f"{f'+{time.monotonic() - self.start:.1f}s':>7}"

    async def event(self, desk: str, event: dict[str, Any]) -> None:
        change = event["payload"].get("change")
        depth = event["payload"].get("event", {}).get("confirmations")
        if not change and depth is not None and depth > FINALITY_DEPTH:
            return  # buried deeper than it needs to be: nothing a reader has to know
        # The status this event moved the swap to, never the swap's status now: a later event may have
        # moved it on already, and its status next to this event's description would misreport both.
        status = change["to"] if change else ""
        print(f"  {self.stamp()}  {desk:<6}  {status:<13}  {await self.describe(event)}", flush=True)

    async def describe(self, event: dict[str, Any]) -> str:
        kind, payload = event["kind"], event["payload"]
        facts = payload.get("event", {})
        leg = self.legs.get(facts.get("leg", 0))
        if kind == "created":
            return f"swap {event['swap_id'][:8]}… created, this desk is the {payload['created']['role']}"
        if kind == "acceptance_registered":
            return "terms agreed and signed by both desks"
        if leg is None:
            return kind.replace("_", " ")
        chain, number = leg["chain"], leg["leg"]
        btc_tip, evm_tip = await self.net.heights()
        tip = btc_tip if chain == "bitcoin" else evm_tip
        txid = payload.get("txid") or facts.get("txid") or ""
        tx = f"tx {txid.removeprefix('0x')[:10]}…" if txid else ""
        conf = facts.get("confirmations")
        depth = "in the mempool" if conf == 0 else f"{conf}/{FINALITY_DEPTH} confirmations"
        if conf is not None and conf >= FINALITY_DEPTH:
            depth += " (final)"
        where = f"{chain} tip {tip}"
        if kind == "lock_broadcast":
            return f"locks leg {number} ({amount(leg)}) on {chain}: {tx} sent"
        if kind == "lock_seen":
            return f"leg {number} lock seen, {depth}, {where}"
        if kind == "claim_broadcast":
            return f"claims leg {number} with the secret: {tx} sent"
        if kind == "claim_seen" and number == 2:
            return f"leg 2 claimed, the secret is public; {depth}, {where}"
        if kind == "claim_seen":
            return f"leg 1 claimed with the secret; {depth}, {where}"
        return f"{kind.replace('_', ' ')} leg {number} {tx} {depth}".strip()

    def mqtt(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        node = topic.split("/")[2]
        desk = self.names.get(node, node)
        self.mqtt_counts[desk] = self.mqtt_counts.get(desk, 0) + 1
        if "/swaps/" not in topic or not message.payload:
            return
        document = json.loads(bytes(message.payload))  # type: ignore[arg-type]
        if self.mqtt_status.get(desk) == document["status"]:
            return  # a depth update: same status, the venue just gets a fresher document
        self.mqtt_status[desk] = document["status"]
        if len(self.mqtt_status) == len(self.names) and set(self.mqtt_status.values()) == {"completed"}:
            self.venue_saw_completion.set()
        short = topic.replace(document["id"], "…")  # the topic subscribed to above, swap id shortened
        print(
            f"  {self.stamp()}  {'mqtt':<6}  {'':<13}  venue receives {short} "
            f"status={document['status']} (retained, seq {document['seq']})",
            flush=True,
        )


def amount(leg: Mapping[str, Any]) -> str:
    if leg["asset"] == "BTC":
        return f"{Decimal(leg['amount']) / SATS_PER_BTC:f} BTC"
    if leg["asset"] == "ETH":
        return f"{Decimal(leg['amount']) / WEI_PER_ETH:f} ETH"
    return f"{leg['amount']} units of {leg['asset']}"


def balance(wallet: Mapping[str, str]) -> str:
    return amount({"asset": wallet["asset"], "amount": wallet["spendable"]})


def step(number: int, text: str) -> None:
    print(f"\n[{number}/5] {text}", flush=True)


async def follow(net: Localnet, daemon: Daemon, desk: str, swap_id: str, timeline: Timeline) -> None:
    """The daemon's event stream for the swap (Server-Sent Events), until a terminal status."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"{daemon.url}/v1/swaps/{swap_id}/events", headers=headers) as response,
    ):
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line.removeprefix("data:"))
            await timeline.event(desk, event)
            if event["status"] in ("completed", "refunded", "failed", "cancelled"):
                return
    raise LocalnetError(f"{desk}'s event stream ended before the swap did; see {daemon.log}")


async def listen(mqtt: aiomqtt.Client, timeline: Timeline) -> None:
    async for message in mqtt.messages:
        timeline.mqtt(message)


async def settle(net: Localnet) -> int:
    a, b = net.daemons
    names = {a.node_id: "desk A", b.node_id: "desk B"}
    node = f"Bitcoin regtest node ({net.btc.kind}): {net.btc.rpc_url}"
    print(f"      {node}, a block every {BTC_BLOCK_INTERVAL_S:g}s")
    print(f"      EVM chain (anvil): {net.anvil.rpc_url}, a block every {EVM_BLOCK_INTERVAL_S:g}s")
    print(f"      HTLC contract on the EVM chain: {net.htlc}")
    for daemon, desk in ((a, "desk A"), (b, "desk B")):
        wallets = await net.wallets(daemon)
        print(
            f"      {desk}: settlerd pid {daemon.process.pid if daemon.process else '?'}, node id "
            f"{daemon.node_id}, API {daemon.url}; wallet {balance(wallets['bitcoin'])} and "
            f"{balance(wallets['evm'])}"
        )
    before = {d.name: await net.wallets(d) for d in (a, b)}

    step(2, "Subscribing to MQTT as a venue would")
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as mqtt:
        for daemon in (a, b):
            await mqtt.subscribe(f"settlerd/v1/{daemon.node_id}/#", qos=1)
            print(f"      subscribed to settlerd/v1/{daemon.node_id}/#")

        step(3, "Trade capture over the HTTP API: desk A sells 0.1 BTC to desk B for 1 ETH")
        started = time.monotonic()
        swap_id = await net.trade(a, b, give=btc(BTC_AMOUNT), get=eth(ETH_AMOUNT))
        print(f"      desk A  POST /v1/swaps                 -> offer for swap {swap_id}, signed by desk A")
        print("      desk B  POST /v1/offers/accept         -> acceptance, signed by desk B")
        print("      desk A  POST /v1/swaps/{id}/acceptance -> both desks now hold the same terms")
        document = await net.swap(a, swap_id)
        legs = document["legs"]
        for leg in legs:
            who = "desk A" if leg["leg"] == 1 else "desk B"
            print(
                f"      leg {leg['leg']}: {who} locks {amount(leg)} on {leg['chain']}, "
                f"refundable from {leg['deadline'][:19]}Z (timelock {leg['timelock']})"
            )
        print(f"      both locks use hashlock {legs[0]['hashlock'][:16]}…; only desk A knows the secret")

        step(4, "Settlement, live (each desk's event stream; 'mqtt' lines are what a venue receives)")
        print("      desk A locks the BTC; desk B waits until that lock is final, then locks the ETH; desk A")
        print("      claims the ETH, which reveals the secret on chain; desk B uses it to claim the BTC.")
        print(f"  {'time':>7}  {'who':<6}  {'status':<13}  what happened")
        timeline = Timeline(net, names, legs)
        timeline.start = started
        listener = asyncio.create_task(listen(mqtt, timeline), name="demo-mqtt")
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                await asyncio.gather(
                    follow(net, a, "desk A", swap_id, timeline), follow(net, b, "desk B", swap_id, timeline)
                )
            finished = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MQTT_CATCH_UP_S):
                    await timeline.venue_saw_completion.wait()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    step(5, "Summary")
    docs = {d.name: await net.swap(d, swap_id) for d in (a, b)}
    if any(doc["status"] != "completed" for doc in docs.values()):
        print(f"      the swap did not complete: {[(n, d['status']) for n, d in docs.items()]}")
        return 1
    for leg in docs[a.name]["legs"]:
        print(f"      leg {leg['leg']}: {amount(leg)} on {leg['chain']}")
        print(f"        lock  {leg['lock_txid']}")
        print(f"        claim {leg['claim_txid']}")
    after = {d.name: await net.wallets(d) for d in (a, b)}
    for daemon, desk in ((a, "desk A"), (b, "desk B")):
        moved = []
        for chain, unit, scale in (("bitcoin", "BTC", SATS_PER_BTC), ("evm", "ETH", WEI_PER_ETH)):
            delta = Decimal(
                int(after[daemon.name][chain]["spendable"]) - int(before[daemon.name][chain]["spendable"])
            )
            moved.append(f"{delta / scale:+.8f} {unit}")
        print(f"      {desk}: {', '.join(moved)} (the amounts traded, less network fees)")
    print(f"      settled in {finished - started:.1f}s from the offer to both desks reporting 'completed'")
    counts = ", ".join(f"from {desk}: {n}" for desk, n in sorted(timeline.mqtt_counts.items()))
    print(f"      MQTT messages the venue received: {counts}")
    for daemon, desk in ((a, "desk A"), (b, "desk B")):
        code, output = await net.audit_verify(daemon)
        print(f"      {desk}: settlerd audit verify: {output.strip()}")
        if code != 0:
            return 1
    return 0


async def demo() -> int:
    print("settlerd demo: two OTC desks settle a trade with an atomic swap (hash-time-locked contracts on")
    print("both chains: either both payments happen or both are refunded). Everything runs locally.")
    step(1, "Starting local chains and two settlerd daemons (desk A, desk B), funding their wallets")
    async with localnet(("desk-a", "desk-b")) as net:
        code = await settle(net)
        print("\nStopping the daemons and the chains ...", flush=True)
    print("Done: nothing left running." if code == 0 else "Failed: see the messages above.")
    return code


def main() -> int:
    try:
        return asyncio.run(demo())
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", file=sys.stderr)
        return 130
    except (LocalnetError, aiomqtt.MqttError, aiohttp.ClientError, TimeoutError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
