// Spawns the real starling binary for the nostr-tools tests: keygen, init, run on 127.0.0.1:0.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, accessSync, constants } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import * as nip19 from 'nostr-tools/nip19'
import { getPublicKey, finalizeEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import WebSocket from 'ws'

// Node 20 has no global WebSocket: give nostr-tools the `ws` package.
useWebSocketImplementation(WebSocket)

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const RELAY_LINE = /^\s*relay\s+(ws:\/\/\S+)/

export function starlingBin () {
  const bin = process.env.STARLING_BIN || join(REPO, 'target', 'debug', 'starling')
  accessSync(bin, constants.X_OK)
  return bin
}

export function keygen () {
  const out = execFileSync(starlingBin(), ['keygen'], { encoding: 'utf8', timeout: 30_000 })
  const found = {}
  for (const line of out.split('\n')) {
    const m = line.match(/^(nsec|npub|hex)\s+(\S+)\s*$/)
    if (m) found[m[1]] = m[2]
  }
  if (!found.nsec || !found.npub || !found.hex) throw new Error(`unexpected keygen output:\n${out}`)
  const decoded = nip19.decode(found.nsec)
  if (decoded.type !== 'nsec') throw new Error(`not an nsec: ${found.nsec}`)
  const sk = decoded.data
  const pk = getPublicKey(sk)
  if (pk !== found.hex) throw new Error(`keygen hex ${found.hex} is not the key of its nsec (${pk})`)
  if (nip19.npubEncode(pk) !== found.npub) throw new Error('keygen npub is not the key of its nsec')
  return { nsec: found.nsec, npub: found.npub, pk, sk }
}

export function sign (sk, kind, content, tags = [], createdAt = Math.floor(Date.now() / 1000)) {
  return finalizeEvent({ kind, content, tags, created_at: createdAt }, sk)
}

// Starts a node owned by a fresh key. Resolves to { url, owner, stop(), logTail() }.
export async function startNode (timeoutMs = 30_000) {
  const owner = keygen()
  const dir = mkdtempSync(join(tmpdir(), 'starling-js-'))
  const dataDir = join(dir, 'data')
  execFileSync(starlingBin(), ['init', '--data-dir', dataDir, '--nsec', owner.nsec],
    { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] })
  const logPath = join(dir, 'node.log')
  const logFd = openSync(logPath, 'a')
  const proc = spawn(starlingBin(), ['run', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'],
    { stdio: ['ignore', 'pipe', logFd], env: { ...process.env, NO_COLOR: '1' } })
  closeSync(logFd)
  const logTail = () => { try { return readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n') } catch { return '' } }
  const stdout = []
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`no relay line within ${timeoutMs} ms\n${stdout.join('\n')}\n${logTail()}`)) }, timeoutMs)
    const rl = createInterface({ input: proc.stdout })
    rl.on('line', line => {
      stdout.push(line)
      const m = line.match(RELAY_LINE)
      if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')) }
    })
    proc.on('exit', code => { clearTimeout(timer); reject(new Error(`starling run exited ${code}\n${stdout.join('\n')}\n${logTail()}`)) })
  })
  if (!/^ws:\/\/127\.0\.0\.1:[1-9][0-9]*$/.test(url)) throw new Error(`bad relay url ${url}`)
  const exited = new Promise(resolve => proc.on('exit', (code, sig) => resolve({ code, sig })))
  async function stop () {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { url, owner, stop, logTail }
}

export async function connect (url) {
  return await withTimeout(Relay.connect(url), 10_000, `connect ${url}`)
}

export function withTimeout (promise, ms, what) {
  let t
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_resolve, reject) => { t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms) })
  ])
}

// Collects the stored events of a REQ until the relay's real EOSE (nostr-tools' own
// EOSE timer is pushed far out so a missing EOSE fails instead of being faked).
export function fetchStored (relay, filters, ms = 10_000) {
  return withTimeout(new Promise((resolve, reject) => {
    const events = []
    const sub = relay.subscribe(filters, {
      eoseTimeout: 600_000,
      onevent: e => events.push(JSON.parse(JSON.stringify(e))), // plain fields only
      oneose: () => { sub.close(); resolve(events) },
      onclose: reason => { if (reason !== 'closed by caller') reject(new Error(`subscription closed: ${reason}`)) }
    })
  }), ms, `EOSE for ${JSON.stringify(filters)}`)
}
