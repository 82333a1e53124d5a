// Harness for the web client's browser tests and figures: real starling nodes on
// loopback (init, then run with API and p2p on port 0, read back from the banner; a second
// node bootstraps from the first), Debian's chromium driven headless by playwright-core,
// bounded waits, and screenshots under target/screenshots/.
import { execFileSync, spawn } from 'node:child_process'
import { accessSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium'
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
export const SCREENSHOT_DIR = join(process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, 'target'), 'screenshots')

export function starlingBin () {
  const bin = process.env.STARLING_BIN || join(REPO, 'target', 'debug', 'starling')
  accessSync(bin, constants.X_OK)
  return bin
}

// Polls `check` (sync or async; a truthy result ends the wait) every `everyMs` until
// `timeoutMs` passes; then throws, naming `what`.
export async function eventually (what, check, { timeoutMs = 30_000, everyMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (let i = 0; i < Math.ceil(timeoutMs / everyMs) + 1; i++) {
    try {
      const result = await check()
      if (result) return result
    } catch (err) { last = err }
    if (Date.now() >= deadline) break
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`)
}

async function getJSON (url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000) })
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  return res.json()
}

// Reads the banner of `starling run` until "Press Ctrl-C": the relay and p2p lines.
function readBanner (proc, logTail, timeoutMs) {
  return new Promise((resolve, reject) => {
    const found = {}
    const lines = []
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`no banner within ${timeoutMs} ms\n${lines.join('\n')}\n${logTail()}`)) }, timeoutMs)
    const rl = createInterface({ input: proc.stdout })
    rl.on('line', line => {
      lines.push(line)
      const m = line.match(/^\s*(relay|p2p)\s+(\S+)/)
      if (m) found[m[1]] = m[2]
      if (line.startsWith('Press Ctrl-C')) {
        clearTimeout(timer)
        if (found.relay && found.p2p) resolve(found)
        else reject(new Error(`banner without relay/p2p lines:\n${lines.join('\n')}`))
      }
    })
    proc.on('exit', code => { clearTimeout(timer); reject(new Error(`starling run exited ${code}\n${lines.join('\n')}\n${logTail()}`)) })
  })
}

// Starts a node owned by a new key; `bootstrap` is another node's p2p multiaddr;
// `offline` runs it without the peer-to-peer network.
export async function startNode (name, { bootstrap, offline = false, timeoutMs = 30_000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `starling-web-${name}-`))
  const dataDir = join(dir, 'data')
  execFileSync(starlingBin(), ['init', '--data-dir', dataDir], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] })
  const logPath = join(dir, 'node.log')
  const logFd = openSync(logPath, 'a')
  const args = ['run', '--data-dir', dataDir, '--api', '127.0.0.1:0']
  if (offline) args.push('--offline')
  else args.push('--listen', '/ip4/127.0.0.1/tcp/0', '--public')
  if (bootstrap) args.push('--bootstrap', bootstrap)
  const proc = spawn(starlingBin(), args, { stdio: ['ignore', 'pipe', logFd], env: { ...process.env, NO_COLOR: '1' } })
  closeSync(logFd)
  const logTail = () => { try { return readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n') } catch { return '' } }
  const banner = await readBanner(proc, logTail, timeoutMs)
  const api = banner.relay.replace(/^ws:/, 'http:').replace(/\/$/, '')
  if (!/^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/.test(api)) throw new Error(`bad API address ${api}`)
  const exited = new Promise(resolve => proc.on('exit', resolve))
  const status = () => getJSON(`${api}/api/status`)
  const { owner_npub: npub, owner_hex: hex } = await status()
  async function stop () {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { name, api, p2p: banner.p2p, npub, hex, dataDir, status, stop, logTail }
}

// Whether `from` finds `who`'s home record in the DHT.
export async function finds (from, who) {
  const res = await fetch(`${from.api}/api/whereis/${who.npub}`, { signal: AbortSignal.timeout(15_000) })
  return res.ok
}

export async function launchBrowser () {
  accessSync(CHROMIUM, constants.X_OK)
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000 })
}

// A new page with its errors collected (page.errors), at a phone's or a desktop's size.
export async function openPage (browser, { phone = false } = {}) {
  const context = await browser.newContext(phone
    ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
    : { viewport: { width: 1100, height: 900 } })
  const page = await context.newPage()
  page.errors = []
  page.on('pageerror', err => page.errors.push(`pageerror: ${err.message}`))
  page.on('console', msg => { if (msg.type() === 'error') page.errors.push(`console: ${msg.text()}`) })
  page.setDefaultTimeout(30_000)
  return page
}

// Saves a full-page screenshot; returns its path.
export async function screenshot (page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true })
  const path = join(SCREENSHOT_DIR, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}
