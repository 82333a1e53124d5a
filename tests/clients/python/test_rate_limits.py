"""Rate limits and caps (issue 7): a client that floods junk EVENTs or REQs is cut off
with `rate-limited:` answers while an honest client from another address goes on; the
connection cap per IP holds; the REST routes answer 429. The node holds loopback clients
to the limits here (`exempt_loopback = false`), and the flooder connects from other
loopback addresses (127.0.0.x), which the node sees as other IPs."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time

import pytest
import nostr_sdk as ns
import websockets

from starling_harness import (NodeHandle, RawRelay, StarlingNode, init_node, keygen, run,
                              short, sign)

RATE = """
[rate]
exempt_loopback = false
max_connections_per_ip = 4
refused_event_cost = 10
connection_events = { per_sec = 5, burst = 20 }
connection_reqs = { per_sec = 2, burst = 5 }
ip_events = { per_sec = 10, burst = 40 }
ip_reqs = { per_sec = 4, burst = 10 }
pubkey_events = { per_sec = 50, burst = 200 }
"""


@pytest.fixture
def limited(request, binary, tmp_path):
    owner = keygen()
    data_dir = tmp_path / "node-data"
    init_node(data_dir, owner)
    config = data_dir / "config.toml"
    # Replace the template's [rate] table (TOML forbids defining it twice).
    text = re.sub(r"\n\[rate\]\n.*?(?=\n\[|\Z)", "\n", config.read_text(), flags=re.S)
    config.write_text(text + RATE)
    node = StarlingNode(data_dir, tmp_path / "node.log")
    handle = NodeHandle(node=node, owner=owner, tmp=tmp_path)
    node.start()
    request.node._starling_nodes = [node]
    try:
        yield handle
    finally:
        try:
            node.stop()
        finally:
            node.kill9()


async def open_from(url: str, source: str):
    return await websockets.connect(url, open_timeout=10, close_timeout=2, ping_interval=None,
                                    max_size=None, compression=None, local_addr=(source, 0))


def junk_events(n: int) -> list[str]:
    """Events with a wrong id (cheap to refuse), and text that is not JSON."""
    out = []
    for i in range(n):
        if i % 2:
            out.append('["EVENT",{"id":"' + "ab" * 32 + '","pubkey":')
        else:
            ev = sign(ns.Keys.generate(), 1, f"junk {i}")
            ev["id"] = "f" * 64
            out.append(json.dumps(["EVENT", ev]))
    return out


def test_junk_flood_is_cut_off_and_an_honest_client_goes_on(limited):
    async def body():
        flooder = await open_from(limited.url, "127.0.0.2")
        honest = await RawRelay.open(limited.url)
        live = await RawRelay.open(limited.url)
        owner = limited.owner.keys
        await live.send(["REQ", "live", {"authors": [limited.owner.hex], "limit": 0}])
        assert (await live.recv())[0] == "EOSE"

        junk = junk_events(300)
        for text in junk:
            await flooder.send(text)
        answers = []
        deadline = time.monotonic() + 20
        while len(answers) < 300 and time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(flooder.recv(), 10))
            if msg[0] in ("OK", "NOTICE"):
                answers.append(msg)
        oks = [m for m in answers if m[0] == "OK"]
        assert not any(m[2] for m in oks), f"junk accepted: {short([m for m in oks if m[2]])}"
        limited_n = sum(1 for m in answers if m[-1].startswith("rate-limited:"))
        looked_at = len(answers) - limited_n
        # 20 tokens, 10 per refused event: only the first few are even parsed as events.
        assert limited_n >= 250, f"only {limited_n} of 300 junk messages were rate-limited: {short(answers[:5])}"
        assert looked_at <= 30, f"{looked_at} junk messages were examined"

        # The honest client, from its own address, posts at its pace and is heard live.
        sent = []
        for i in range(10):
            ev = sign(owner, 1, f"honest post {i}")
            ok = await honest.publish(ev)
            assert ok[2] is True, f"honest post refused during the flood: {short(ok)}"
            sent.append(ev["id"])
            await flooder.send(junk[i])
            await asyncio.sleep(0.1)
        got = []
        while len(got) < len(sent):
            msg = await live.recv(10)
            if msg[0] == "EVENT":
                got.append(msg[2]["id"])
        assert got == sent
        stored = await honest.req({"ids": ["f" * 64, "ab" * 32]})
        assert stored == []
        await flooder.close()
        await honest.close()
        await live.close()
    run(body())


def test_req_flood_is_closed_rate_limited_and_refills(limited):
    async def body():
        ws = await open_from(limited.url, "127.0.0.2")
        for i in range(30):
            await ws.send(json.dumps(["REQ", f"s{i}", {"kinds": [1], "limit": 10}]))
            await ws.send(json.dumps(["CLOSE", f"s{i}"]))
        eose, closed = set(), {}
        deadline = time.monotonic() + 15
        while len(eose) + len(closed) < 30 and time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg[0] == "EOSE":
                eose.add(msg[1])
            elif msg[0] == "CLOSED":
                closed[msg[1]] = msg[2]
        assert len(eose) + len(closed) == 30, f"{len(eose)} EOSE, {len(closed)} CLOSED of 30 REQs"
        assert 1 <= len(eose) <= 8, f"{len(eose)} REQs answered in a burst of 5"
        assert all(r.startswith("rate-limited:") for r in closed.values()), short(closed)
        # Two tokens a second come back.
        await asyncio.sleep(1.2)
        await ws.send(json.dumps(["REQ", "later", {"kinds": [1], "limit": 1}]))
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert msg[:2] == ["EOSE", "later"], short(msg)
        await ws.close()
    run(body())


def test_connections_per_ip_are_capped(limited):
    async def body():
        held = [await open_from(limited.url, "127.0.0.3") for _ in range(4)]
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await open_from(limited.url, "127.0.0.3")
        assert refused.value.response.status_code == 503
        other = await open_from(limited.url, "127.0.0.4")
        await other.close()
        await held.pop().close()
        await asyncio.sleep(0.3)
        again = await open_from(limited.url, "127.0.0.3")
        for ws in [again, *held]:
            await ws.close()
    run(body())


def test_rest_publish_answers_429_over_the_ip_budget(limited):
    host, port = limited.http.removeprefix("http://").split(":")
    statuses = []
    for i in range(60):
        conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=("127.0.0.5", 0))
        ev = sign(limited.owner.keys, 1, f"rest {i}")
        conn.request("POST", "/publish", body=json.dumps(ev), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        statuses.append((resp.status, resp.read().decode()))
        conn.close()
    ok = [s for s, _ in statuses if s == 200]
    limited_n = [b for s, b in statuses if s == 429]
    assert len(ok) >= 40, f"only {len(ok)} of the first 60 posts accepted with a burst of 40: {statuses[:3]}"
    assert limited_n and all("rate-limited" in b for b in limited_n), statuses[-3:]
