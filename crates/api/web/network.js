// The network page: the node's figures from GET /api/status (peers and their paths,
// reachability, addresses, DHT, follow subscriptions, the outbox) and the owner's home set
// from GET /api/whereis/OWNER (a DHT lookup, so only every sixth time), refreshed every
// few seconds while the page is open.

import { h, fetchJSON } from './dom.js'

const REFRESH_MS = 5000

function table (rows) {
  return h('table', null, h('tbody', null, rows.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v)))))
}

const list = items => items && items.length ? h('ul', { class: 'addrs' }, items.map(a => h('li', null, h('code', null, a)))) : h('span', { class: 'muted' }, 'none')

function duration (secs) {
  const d = Math.floor(secs / 86400); const hr = Math.floor(secs / 3600) % 24; const m = Math.floor(secs / 60) % 60
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : `${m}m ${secs % 60}s`
}

function nodeSection (s) {
  return h('section', { class: 'card' }, h('h2', null, 'Node'), table([
    ['version', s.version], ['owner', h('code', null, s.owner_npub)], ['uptime', duration(s.uptime_secs)],
    ['events stored', `${s.events} (${(s.event_bytes / 1024).toFixed(0)} KiB)`], ['client connections', s.connections]
  ]))
}

function networkSection (n) {
  const peers = n.peers || []
  const outbox = n.outbox || {}
  return [
    h('section', { class: 'card' }, h('h2', null, 'Reachability'), table([
      ['reachability', h('strong', { class: 'reach' }, n.reachability)], ['DHT mode', n.dht_mode],
      ['peer id', h('code', null, n.peer_id)], ['listening on', list(n.listen_addrs)],
      ['external', list(n.external_addrs)], ['advertised', list(n.advertised_addrs)],
      ['DHT routing peers', n.dht_routing_peers], ['network size (estimate)', n.dht_size_estimate],
      ['broadcast mode', n.broadcast ? 'on' : 'off'], ['banned peers', n.banned_peers]
    ])),
    h('section', { class: 'card' }, h('h2', null, `Peers (${peers.length})`),
      peers.length
        ? h('table', { class: 'peers' }, h('thead', null, h('tr', null, h('th', null, 'peer'), h('th', null, 'path'), h('th', null, 'address'))),
          h('tbody', null, peers.map(p => h('tr', null, h('td', null, h('code', null, p.peer.slice(0, 8) + '…' + p.peer.slice(-6))), h('td', null, p.path), h('td', null, h('code', null, p.addr))))))
        : h('p', { class: 'muted' }, 'no peers connected')),
    h('section', { class: 'card' }, h('h2', null, 'Delivery'), table([
      ['follows', n.follows], ['live subscriptions held', n.subscribed], ['subscribers here', n.subscribers],
      ['home for (users)', n.home_for],
      ['outbox', `${outbox.pending ?? 0} pending · ${outbox.delivered ?? 0} delivered · ${outbox.given_up ?? 0} given up`],
      ['catch-up', n.catch_up ? `${n.catch_up.fetched} fetched · ${n.catch_up.missing} missing · ${n.catch_up.in_flight} in flight` : '—']
    ]))
  ]
}

function homeSetSection (record, error) {
  const members = record && record.home_set ? record.home_set : []
  return h('section', { class: 'card home-set' }, h('h2', null, 'Your home set'),
    error
      ? h('p', { class: 'muted' }, error)
      : members.length
        ? h('ol', null, members.map(m => h('li', null, h('div', null, h('code', null, m.peer_id)), list(m.addrs))))
        : h('p', { class: 'muted' }, 'no other node keeps your events yet'))
}

export function networkView (model) {
  const body = h('div', null, h('p', { class: 'muted' }, 'loading…'))
  const el = h('section', { class: 'view network' }, h('h2', null, 'Network'), body)
  let timer = null
  let closed = false
  let tick = 0
  let record = null
  let error = null
  const refresh = async () => {
    try {
      const status = await fetchJSON('/api/status')
      if (status.network && tick++ % 6 === 0) {
        try { record = await fetchJSON(`/api/whereis/${model.me.npub}`); error = null } catch (err) { error = err.message }
      }
      if (closed) return
      body.replaceChildren(nodeSection(status),
        ...(status.network ? [homeSetSection(record, error), ...networkSection(status.network)] : [h('p', { class: 'muted' }, 'This node runs without the peer-to-peer network (local relay only).')]))
      el.dataset.loaded = 'true'
    } catch (err) {
      if (!closed) body.replaceChildren(h('p', { class: 'error' }, err.message))
    }
    if (!closed) timer = setTimeout(refresh, REFRESH_MS)
  }
  refresh()
  return { el, close () { closed = true; clearTimeout(timer) } }
}
