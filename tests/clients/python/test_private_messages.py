"""NIP-17 private messages across real nodes on loopback: `starling dm` to one user and to
a group, read with `starling dms` on every member's node and by nobody else; a message
sent by starling read with rust-nostr's Python client, and one that client sends through
its node's relay read by starling. The nodes' files hold no message text."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import nostr_sdk as ns

from starling_harness import StarlingNode, run, run_cli, start_networked

TIMEOUT = timedelta(seconds=10)


def start_network(tmp_path: Path, names: list[str]):
    """One node per name, each owned by a fresh key; the first is everyone's bootstrap."""
    nodes = {}
    first = None
    for name in names:
        node, owner = start_networked(tmp_path, name, first.p2p if first else None)
        first = first or node
        nodes[name] = (node, owner)
    return nodes


def cli(node: StarlingNode, *args: str) -> str:
    res = run_cli(*args, "--data-dir", str(node.data_dir), timeout=60)
    assert res.returncode == 0, f"starling {' '.join(args)} failed: {res.stderr}"
    return res.stdout


def dms(node: StarlingNode, *args: str) -> list[dict]:
    out = cli(node, "dms", *args, "--json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_for(what: str, check, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            found.append(path)
    return found


def test_dm_and_group_reach_members_only(tmp_path):
    nodes = start_network(tmp_path, ["alice", "bob", "carol", "dave", "erin", "mallory"])
    try:
        (alice, a), (bob, b), (carol, c) = nodes["alice"], nodes["bob"], nodes["carol"]
        (dave, d), (erin, e), (mallory, m) = nodes["dave"], nodes["erin"], nodes["mallory"]
        one = "just between us: the key is under the mat"
        out = cli(alice, "dm", b.npub, one)
        assert "sent privately to 1 recipient" in out, out
        got = wait_for("bob's message", lambda: [x for x in dms(bob, a.npub) if x["text"] == one])
        assert got[0]["from"] == a.npub

        group_text = "group of five: meet at noon"
        cli(alice, "dm", b.npub, c.npub, d.npub, e.npub, group_text)
        members = {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "erin": erin}
        everyone = sorted([a.npub, b.npub, c.npub, d.npub, e.npub])
        def group_of(name, node):
            me = nodes[name][1].npub
            return [x for x in dms(node) if sorted(x["with"] + [me]) == everyone]

        for name, node in members.items():
            convs = wait_for(f"{name}'s group conversation",
                             lambda name=name, node=node: group_of(name, node))
            assert len(convs) == 1 and convs[0]["messages"] >= 1, convs
        # Each member answers in the group; every member reads every message.
        for name, node in members.items():
            others = [k.npub for n, (_, k) in nodes.items() if n in members and n != name]
            cli(node, "dm", *others, f"ack from {name}")
        for name, node in members.items():
            def six(name=name, node=node):
                ms = group_of(name, node)
                return ms and ms[0]["messages"] >= 6 and ms
            convs = wait_for(f"{name} reading all six group messages", six)
            assert convs[0]["messages"] == 6, convs
        # Mallory, not a member, reads none of it.
        time.sleep(2)
        assert dms(mallory) == [], "a non-member read a private message"
    finally:
        for node, _ in nodes.values():
            node.stop()
    for text in (one, group_text, "ack from bob"):
        leaked = files_containing(tmp_path, text.encode())
        leaked = [p for p in leaked if p.suffix != ".log"]
        assert not leaked, f"plaintext of a private message in {leaked}"


def test_interop_with_nostr_sdk_both_ways(tmp_path):
    nodes = start_network(tmp_path, ["alice", "bob"])
    (alice, a), (bob, b) = nodes["alice"], nodes["bob"]
    try:
        text = "from starling to a standard client"
        cli(alice, "dm", b.npub, text)

        async def body():
            ns.uniffi_set_event_loop(asyncio.get_running_loop())
            client = ns.ClientBuilder().authenticator(ns.SignerAuthenticator(b.keys)).build()
            rurl = ns.RelayUrl.parse(bob.url)
            await client.add_relay(rurl)
            await client.connect()
            try:
                f = ns.Filter().kind(ns.Kind(1059)).pubkey(b.keys.public_key())
                opened = []
                for _ in range(30):
                    events = await client.fetch_events(ns.ReqTarget.single(rurl, [f]), timeout=TIMEOUT)
                    opened = [ns.UnwrappedGift.from_gift_wrap(b.keys, ev) for ev in events]
                    if opened:
                        break
                    await asyncio.sleep(1)
                assert [g.rumor().content() for g in opened] == [text], opened
                assert opened[0].sender().to_hex() == a.hex
                # And back: the standard client sends through its own node's relay.
                wrap = ns.nip17_make_private_msg(b.keys, a.keys.public_key(), "from a standard client")
                out = await client.send_event(wrap)
                assert [str(u) for u in out.success] == [str(rurl)], out.failed
            finally:
                await client.disconnect()
                ns.uniffi_set_event_loop(None)

        run(body(), timeout=120)
        got = wait_for("alice reading the standard client's message",
                       lambda: [x for x in dms(alice, b.npub) if x["text"] == "from a standard client"])
        assert got[0]["from"] == b.npub
    finally:
        for node, _ in nodes.values():
            node.stop()
