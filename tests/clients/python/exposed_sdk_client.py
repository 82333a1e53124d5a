"""nostr-sdk as another machine's client of an exposed node, run by test_exposed_tls.py
inside the client's network namespace (`ip netns exec`: nostr-sdk's own threads must be in
it too, so it runs as a process of its own).

    python exposed_sdk_client.py URL SIGNER_NSEC EVENT_JSON

Connects to URL with SIGNER_NSEC as its NIP-42 authenticator, sends EVENT_JSON (already
signed) and prints one JSON line: {"success": [relay URLs], "failed": {relay URL: reason}}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta

import nostr_sdk as ns

TIMEOUT = timedelta(seconds=10)


async def main(url: str, nsec: str, event_json: str) -> dict:
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    keys = ns.Keys.parse(nsec)
    client = ns.ClientBuilder().authenticator(ns.SignerAuthenticator(keys)).build()
    rurl = ns.RelayUrl.parse(url)
    await client.add_relay(rurl)
    out = await client.try_connect(TIMEOUT)
    if [str(u) for u in out.success] != [str(rurl)]:
        return {"connect_failed": {str(k): str(v) for k, v in out.failed.items()}}
    try:
        sent = await client.send_event(ns.Event.from_json(event_json), ok_timeout=TIMEOUT)
        return {"success": [str(u) for u in sent.success],
                "failed": {str(k): str(v) for k, v in sent.failed.items()}}
    finally:
        await client.disconnect()
        ns.uniffi_set_event_loop(None)


if __name__ == "__main__":
    result = asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), 60))
    print(json.dumps(result), flush=True)
    # After an authenticated session, nostr-sdk 0.45.1's bindings crash (SIGSEGV) while
    # the interpreter tears down; everything is done and printed by now, so skip teardown.
    os._exit(0)
