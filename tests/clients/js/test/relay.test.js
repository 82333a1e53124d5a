// nostr-tools 2.25.2 (Relay + ws) against the real starling binary.
import { test, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, verifyEvent } from 'nostr-tools/pure'
import { connect, fetchStored, sign, startNode, withTimeout } from '../lib/starling.js'

let node
let relays = []

beforeEach(async () => {
  node = await startNode()
  relays = []
})

afterEach(async (t) => {
  for (const r of relays) r.close()
  if (node) {
    await node.stop()
    node = undefined
  }
})

async function open () {
  const r = await connect(node.url)
  relays.push(r)
  return r
}

const now = () => Math.floor(Date.now() / 1000)

test('publishes an owner-signed kind 1 (OK true) and is refused for a foreign key (blocked:)', async () => {
  const relay = await open()
  const mine = sign(node.owner.sk, 1, 'hello from nostr-tools')
  const reason = await withTimeout(relay.publish(mine), 10_000, 'publish')
  assert.equal(typeof reason, 'string')

  const stranger = generateSecretKey()
  const foreign = sign(stranger, 1, 'not the owner')
  await assert.rejects(withTimeout(relay.publish(foreign), 10_000, 'publish foreign'),
    err => { assert.match(err.message, /^blocked:/); return true })

  assert.deepEqual(await fetchStored(relay, [{ ids: [mine.id] }]), [stripSymbols(mine)])
  assert.deepEqual(await fetchStored(relay, [{ ids: [foreign.id] }]), [])
})

test('subscription: stored events, then EOSE, then a live event', async () => {
  const relay = await open()
  const t = now()
  const stored = [0, 1, 2].map(i => sign(node.owner.sk, 1, `stored ${i}`, [], t - 30 + i))
  for (const ev of stored) await withTimeout(relay.publish(ev), 10_000, 'publish stored')

  const seen = []
  let eosed = false
  let onLive
  const live = new Promise(resolve => { onLive = resolve })
  const eose = new Promise((resolve, reject) => {
    relay.subscribe([{ authors: [node.owner.pk], kinds: [1] }], {
      eoseTimeout: 600_000, // only the relay's real EOSE counts
      onevent: e => {
        seen.push({ id: e.id, afterEose: eosed })
        if (eosed) onLive(e)
      },
      oneose: () => { eosed = true; resolve() },
      onclose: reason => reject(new Error(`subscription closed: ${reason}`))
    })
  })
  await withTimeout(eose, 10_000, 'EOSE')
  assert.deepEqual(seen.map(s => s.id).sort(), stored.map(e => e.id).sort())
  assert.ok(seen.every(s => !s.afterEose))

  const writer = await open() // another connection publishes the live event
  const fresh = sign(node.owner.sk, 1, 'live after EOSE')
  await withTimeout(writer.publish(fresh), 10_000, 'publish live')
  const got = await withTimeout(live, 10_000, 'live event')
  assert.ok(!stored.some(e => e.id === got.id), `stored event ${got.id} delivered again after EOSE (duplicate delivery)`)
  assert.equal(got.id, fresh.id)
  assert.ok(verifyEvent(got))
  assert.equal(seen.length, stored.length + 1)
})

test('a newer kind 0 replaces the older one', async () => {
  const relay = await open()
  const t = now()
  const older = sign(node.owner.sk, 0, JSON.stringify({ name: 'old' }), [], t - 20)
  const newer = sign(node.owner.sk, 0, JSON.stringify({ name: 'new' }), [], t - 10)
  await withTimeout(relay.publish(older), 10_000, 'publish older')
  await withTimeout(relay.publish(newer), 10_000, 'publish newer')
  const got = await fetchStored(relay, [{ authors: [node.owner.pk], kinds: [0] }])
  assert.deepEqual(got, [stripSymbols(newer)])
  assert.deepEqual(await fetchStored(relay, [{ ids: [older.id] }]), [])
})

test('NIP-09: a kind 5 deletion hides its target; the deletion itself is stored', async () => {
  const relay = await open()
  const t = now()
  const target = sign(node.owner.sk, 1, 'delete me', [], t - 20)
  const keep = sign(node.owner.sk, 1, 'keep me', [], t - 19)
  await withTimeout(relay.publish(target), 10_000, 'publish target')
  await withTimeout(relay.publish(keep), 10_000, 'publish keep')
  assert.deepEqual(await fetchStored(relay, [{ ids: [target.id] }]), [stripSymbols(target)])

  const deletion = sign(node.owner.sk, 5, '', [['e', target.id], ['k', '1']], t - 10)
  await withTimeout(relay.publish(deletion), 10_000, 'publish deletion')
  assert.deepEqual(await fetchStored(relay, [{ ids: [target.id] }]), [])
  assert.deepEqual(await fetchStored(relay, [{ authors: [node.owner.pk], kinds: [1] }]), [stripSymbols(keep)])
  assert.deepEqual(await fetchStored(relay, [{ ids: [deletion.id] }]), [stripSymbols(deletion)])
})

test('NIP-45 COUNT through nostr-tools', async () => {
  const relay = await open()
  for (let i = 0; i < 4; i++) await withTimeout(relay.publish(sign(node.owner.sk, 1, `n ${i}`)), 10_000, 'publish')
  const n = await withTimeout(relay.count([{ authors: [node.owner.pk], kinds: [1] }], {}), 10_000, 'COUNT')
  assert.equal(n, 4)
})

// finalizeEvent marks events with a symbol (verified flag); compare plain JSON fields.
function stripSymbols (ev) {
  return JSON.parse(JSON.stringify(ev))
}
