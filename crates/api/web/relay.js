// One NIP-01 WebSocket connection to the node: subscriptions that survive reconnects
// (re-sent when the socket opens again; handlers see stored events again and must
// de-duplicate by id), and publishing with the node's OK as the answer.

const OK_TIMEOUT_MS = 15000
const MAX_BACKOFF_MS = 30000

export class Relay {
  // `name` prefixes the subscription ids; `onstate(open)` follows the connection.
  constructor (url, name, onstate = () => {}) {
    this.url = url
    this.name = name
    this.onstate = onstate
    this.subs = new Map() // id -> { filters, onevent, oneose }
    this.pending = new Map() // event id -> { resolve, reject, timer }
    this.queue = [] // EVENTs waiting for the socket
    this.next = 0
    this.failures = 0
    this.open = false
    this.connect()
  }

  connect () {
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.onopen = () => {
      this.open = true
      this.failures = 0
      this.onstate(true)
      for (const [id, sub] of this.subs) this.raw(['REQ', id, ...sub.filters])
      for (const msg of this.queue.splice(0)) this.raw(msg)
    }
    ws.onmessage = e => this.receive(e.data)
    ws.onclose = () => {
      if (this.ws !== ws) return
      this.open = false
      this.onstate(false)
      const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures++)
      setTimeout(() => this.connect(), wait)
    }
  }

  // Sends now, or (EVENTs only) once the socket is open: open subscriptions are re-sent
  // on open anyway, and closed ones need nothing.
  raw (msg) {
    if (this.open) this.ws.send(JSON.stringify(msg))
    else if (msg[0] === 'EVENT') this.queue.push(msg)
  }

  receive (data) {
    let msg
    try { msg = JSON.parse(data) } catch { return }
    if (!Array.isArray(msg)) return
    const [type, a, b, c] = msg
    const sub = this.subs.get(a)
    if (type === 'EVENT' && sub && b && typeof b.id === 'string') sub.onevent(b)
    else if (type === 'EOSE' && sub) sub.oneose()
    else if (type === 'CLOSED' && sub) { this.subs.delete(a); sub.onclosed(b) }
    else if (type === 'OK') this.answer(a, b, c)
  }

  answer (id, accepted, reason) {
    const wait = this.pending.get(id)
    if (!wait) return
    this.pending.delete(id)
    clearTimeout(wait.timer)
    if (accepted) wait.resolve()
    else wait.reject(new Error(`the node refused the event: ${reason}`))
  }

  // Opens a subscription; returns { update(filters), close() }.
  sub (filters, { onevent = () => {}, oneose = () => {}, onclosed = () => {} } = {}) {
    const id = `${this.name}${++this.next}`
    this.subs.set(id, { filters, onevent, oneose, onclosed })
    this.raw(['REQ', id, ...filters])
    return {
      update: next => {
        const sub = this.subs.get(id)
        if (!sub) return
        sub.filters = next
        this.raw(['REQ', id, ...next])
      },
      close: () => {
        if (this.subs.delete(id)) this.raw(['CLOSE', id])
      }
    }
  }

  // Sends a signed event; resolves when the node accepted it.
  publish (ev) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ev.id)
        reject(new Error('the node did not answer in time'))
      }, OK_TIMEOUT_MS)
      this.pending.set(ev.id, { resolve, reject, timer })
      this.raw(['EVENT', ev])
    })
  }
}
