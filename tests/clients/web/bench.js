// Figures for the web client, measured in the browser (Debian chromium, headless, through
// playwright-core) against a real node on loopback holding 50 of its owner's notes:
//
//   - first load: the bytes transferred for the page and its files with an empty cache,
//     from the DevTools protocol's network events (encoded bytes, headers included) and
//     from the page's Resource Timing (transferSize); the timeline's events arrive over the
//     WebSocket and are counted apart;
//   - render: the page's own 'timeline-render' measure (performance.now() around building
//     the 50 cards, inserting them and the layout that forces), over RUNS fresh loads;
//     median, min and max, without and with 4x CPU throttling (a phone's speed, roughly).
//
//   cd tests/clients/web && npm ci && STARLING_BIN=../../../target/debug/starling node bench.js
import { execFileSync } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { launchBrowser, startNode, CHROMIUM } from './lib/harness.js'

const NOTES = 50
const RUNS = Number(process.env.RUNS || 15)

const median = xs => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const fmt = x => x.toFixed(1)

// Signs (through the node) and publishes NOTES notes from inside the page.
async function seed (page) {
  return page.evaluate(async count => {
    const ws = new WebSocket(`ws://${location.host}/`)
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject })
    const oks = new Map()
    ws.onmessage = e => { const m = JSON.parse(e.data); if (m[0] === 'OK') oks.get(m[1])?.(m[2]) }
    const sign = async t => (await fetch('/api/sign', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(t) })).json()
    const profile = await sign({ kind: 0, content: JSON.stringify({ name: 'bench', about: 'fifty notes' }), tags: [] })
    const events = [profile]
    const now = Math.floor(Date.now() / 1000)
    for (let i = 0; i < count; i++) {
      const words = `note ${i} of the benchmark timeline: some ordinary text of ordinary length, with a link https://example.org/${i} and a few more words`
      events.push(await sign({ kind: 1, content: words, tags: [], created_at: now - count + i }))
    }
    let accepted = 0
    for (const ev of events) {
      const ok = new Promise(resolve => oks.set(ev.id, resolve))
      ws.send(JSON.stringify(['EVENT', ev]))
      if (await ok) accepted++
    }
    ws.close()
    return accepted
  }, NOTES)
}

// One load with an empty cache: bytes by the DevTools protocol and by Resource Timing.
async function firstLoad (browser, url) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true })
  const http = new Map()
  let wsBytes = 0
  cdp.on('Network.responseReceived', e => http.set(e.requestId, { url: e.response.url, encoding: e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] || '', bytes: 0 }))
  cdp.on('Network.loadingFinished', e => { if (http.has(e.requestId)) http.get(e.requestId).bytes = e.encodedDataLength })
  cdp.on('Network.webSocketFrameReceived', e => { wsBytes += e.response.payloadData.length })
  await page.goto(url)
  await page.locator('section.home[data-rendered]').waitFor({ timeout: 30_000 })
  await page.waitForTimeout(500)
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0]
    const res = performance.getEntriesByType('resource')
    return { transfer: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0), body: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0), files: 1 + res.length }
  })
  await context.close()
  const requests = [...http.values()]
  return { requests, cdpBytes: requests.reduce((n, r) => n + r.bytes, 0), wsBytes, ...timing }
}

// RUNS fresh loads; the 'timeline-render' measure of each.
async function renderTimes (browser, url, throttle) {
  const times = []
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
    const page = await context.newPage()
    if (throttle > 1) await (await context.newCDPSession(page)).send('Emulation.setCPUThrottlingRate', { rate: throttle })
    await page.goto(url)
    const home = page.locator('section.home[data-rendered]')
    await home.waitFor({ timeout: 60_000 })
    const rendered = Number(await home.getAttribute('data-rendered'))
    if (rendered !== NOTES) throw new Error(`the timeline rendered ${rendered} notes, not ${NOTES}`)
    times.push(await page.evaluate(() => performance.getEntriesByName('timeline-render')[0].duration))
    await context.close()
  }
  return { median: median(times), min: Math.min(...times), max: Math.max(...times), runs: times.length }
}

async function main () {
  const node = await startNode('bench', { offline: true })
  const browser = await launchBrowser()
  try {
    const setup = await browser.newPage()
    await setup.goto(`${node.api}/`)
    const accepted = await seed(setup)
    if (accepted !== NOTES + 1) throw new Error(`the node accepted ${accepted} of ${NOTES + 1} events`)
    await setup.close()
    const load = await firstLoad(browser, `${node.api}/`)
    const plain = await renderTimes(browser, `${node.api}/`, 1)
    const slow = await renderTimes(browser, `${node.api}/`, 4)
    const cpu = cpus()
    console.log(`date: ${new Date().toISOString()}`)
    console.log(`machine: ${cpu[0].model}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim()} headless`)
    console.log(`first load (empty cache): ${load.files} files, ${load.cdpBytes} bytes transferred (DevTools protocol: encoded bodies + headers), ${load.transfer} bytes (Resource Timing transferSize); ${load.body} bytes uncompressed`)
    for (const r of load.requests) console.log(`  ${String(r.bytes).padStart(6)}  ${r.encoding || 'identity'}  ${r.url.replace(node.api, '')}`)
    console.log(`  + ${load.wsBytes} bytes of events over the WebSocket (the timeline, profiles, notifications)`)
    console.log(`render of the ${NOTES}-note timeline: median ${fmt(plain.median)} ms (min ${fmt(plain.min)}, max ${fmt(plain.max)}, ${plain.runs} loads)`)
    console.log(`  with 4x CPU throttling: median ${fmt(slow.median)} ms (min ${fmt(slow.min)}, max ${fmt(slow.max)}, ${slow.runs} loads)`)
  } finally {
    await browser.close()
    await node.stop()
  }
}

main().catch(err => { console.error(err); process.exitCode = 1 })
