// The starling web client's entry point: asks the node who its owner is (GET /api/me),
// opens the node's WebSocket (three connections, see model.js), and routes the page by
// its hash:
//
//   #/                  home timeline          #/notifications   notifications
//   #/note/NOTE[/quote] thread (or quote)      #/following       follow list
//   #/p/NPUB, #/me      profile                #/network         network status
//   #/messages          private conversations  #/messages/HEX,…  one conversation

import { h, fetchJSON, showError } from './dom.js'
import { Signer } from './nostr.js'
import { Relay } from './relay.js'
import { Model } from './model.js'
import { fillEmbeds, refreshCounts, refreshPerson } from './notes.js'
import { homeView, notificationsView, threadView } from './views.js'
import { followingView, profileView } from './people.js'
import { networkView } from './network.js'
import { messagesView } from './messages.js'

const routes = [
  [/^#?\/?$/, model => homeView(model), 'home'],
  [/^#\/notifications$/, model => notificationsView(model), 'notifications'],
  [/^#\/following$/, model => followingView(model), 'following'],
  [/^#\/network$/, model => networkView(model), 'network'],
  [/^#\/messages$/, model => messagesView(model, null), 'messages'],
  [/^#\/messages\/([0-9a-f,]+)$/, (model, key) => messagesView(model, key), 'messages'],
  [/^#\/me$/, model => profileView(model, 'me'), 'me'],
  [/^#\/p\/([^/]+)$/, (model, ref) => profileView(model, ref), 'profile'],
  [/^#\/note\/([^/]+)(?:\/(quote))?$/, (model, ref, mode) => threadView(model, ref, mode), 'thread']
]

function wsUrl () {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`
}

function connectionBadge () {
  const el = document.getElementById('conn')
  const up = new Set()
  return name => open => {
    if (open) up.add(name); else up.delete(name)
    el.textContent = up.size === 3 ? 'live' : 'connecting…'
    el.classList.toggle('up', up.size === 3)
  }
}

function router (model) {
  const main = document.getElementById('main')
  let current = null
  const show = () => {
    const hash = location.hash || '#/'
    if (current) current.close()
    current = null
    for (const [pattern, make, nav] of routes) {
      const m = hash.match(pattern)
      if (!m) continue
      current = make(model, ...m.slice(1))
      for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav)
      main.replaceChildren(current.el)
      document.body.dataset.view = nav
      window.scrollTo(0, 0)
      return
    }
    main.replaceChildren(h('p', { class: 'error' }, 'No such page. '), h('a', { href: '#/' }, 'Home'))
  }
  window.addEventListener('hashchange', show)
  show()
}

function badge (model) {
  const el = document.getElementById('badge')
  const render = () => {
    const n = model.unseen()
    el.textContent = n > 99 ? '99+' : String(n)
    el.hidden = n === 0
  }
  model.on('notification', render)
  model.on('seen', render)
  render()
}

async function start () {
  const me = await fetchJSON('/api/me')
  const signer = new Signer(me)
  const state = connectionBadge()
  const relays = Object.fromEntries(['main', 'feed', 'lookup'].map(name => [name, new Relay(wsUrl(), name[0], state(name))]))
  const model = new Model(me, relays, signer)
  model.on('profile', pubkey => refreshPerson(model, pubkey))
  model.on('event', ev => fillEmbeds(model, ev))
  model.on('counts', id => refreshCounts(model, id))
  model.start()
  badge(model)
  router(model)
  document.getElementById('signer').textContent = `signing: ${await signer.describe()}`
  window.addEventListener('unhandledrejection', e => showError(e.reason))
}

start().catch(err => showError(err))
