// Private messages (NIP-17). A browser has no secp256k1 for NIP-44, so the node seals and
// opens them for the page (GET /api/dms, POST /api/dm; only when it holds the owner's
// key): the list of conversations, one conversation (#/messages/HEX,HEX,... — the other
// participants), and a form to write to one or more people by npub. Refreshed every few
// seconds while open; new messages arrive through the node's inbox.

import { h, fetchJSON, busy, ago } from './dom.js'
import { decodeRef } from './nostr.js'

const REFRESH_MS = 3000

// The conversation key: the other participants' hex keys, sorted, comma-separated.
const keyOf = (m, me) => m.participants.filter(p => p !== me).sort().join(',')

function group (messages, me) {
  const convs = new Map()
  for (const m of messages) {
    const k = keyOf(m, me)
    if (!convs.has(k)) convs.set(k, [])
    convs.get(k).push(m)
  }
  return [...convs.entries()].sort((a, b) => b[1].at(-1).created_at - a[1].at(-1).created_at)
}

function names (model, key) {
  return key.split(',').map(hex => model.name(hex)).join(', ')
}

function writeForm (model, fixed, onsent) {
  const to = fixed ? null : h('input', { name: 'to', placeholder: 'npub1… (several: separate with spaces)', autocomplete: 'off' })
  const text = h('textarea', { name: 'text', rows: 3, placeholder: 'A private message', required: true })
  const button = h('button', { type: 'submit' }, 'Send privately')
  const form = h('form', { class: 'composer dm-form', onsubmit: e => {
    e.preventDefault()
    busy(button, async () => {
      const recipients = fixed || to.value.split(/[\s,]+/).filter(Boolean).map(r => decodeRef(r).hex)
      await fetchJSON('/api/dm', { to: recipients, text: text.value })
      text.value = ''
      if (to) to.value = ''
      onsent()
    })
  } }, to, text, button)
  return form
}

function conversationList (model, convs) {
  if (!convs.length) return h('p', { class: 'muted' }, 'No private messages yet.')
  return h('ul', { class: 'conversations' }, convs.map(([key, msgs]) => {
    const last = msgs.at(-1)
    return h('li', { class: 'conversation' },
      h('a', { href: `#/messages/${key}` }, h('strong', null, names(model, key))),
      h('div', { class: 'muted' }, `${msgs.length} message(s) · ${ago(last.created_at)}`),
      h('div', { class: 'last' }, last.text))
  }))
}

function thread (model, msgs) {
  return h('ol', { class: 'dm-thread' }, msgs.map(m => h('li', { class: m.from === model.me.hex ? 'dm mine' : 'dm' },
    h('div', { class: 'muted' }, `${m.from === model.me.hex ? 'you' : model.name(m.from)} · ${ago(m.created_at)}`),
    h('div', { class: 'dm-text' }, m.text))))
}

export function messagesView (model, key) {
  const body = h('div', null, h('p', { class: 'muted' }, 'loading…'))
  const title = h('h2', null, key ? names(model, key) : 'Messages')
  let timer = null
  let closed = false
  const refresh = async () => {
    clearTimeout(timer)
    try {
      const { messages } = await fetchJSON('/api/dms')
      if (closed) return
      const convs = group(messages, model.me.hex)
      if (key) {
        const msgs = (convs.find(([k]) => k === key) || [key, []])[1]
        title.textContent = names(model, key)
        body.replaceChildren(thread(model, msgs), writeForm(model, key.split(','), refresh))
      } else {
        body.replaceChildren(writeForm(model, null, refresh), conversationList(model, convs))
      }
      el.dataset.loaded = 'true'
    } catch (err) {
      if (!closed) body.replaceChildren(h('p', { class: 'error' }, err.message))
    }
    if (!closed) timer = setTimeout(refresh, REFRESH_MS)
  }
  const el = h('section', { class: 'view messages' }, title, body)
  refresh()
  return { el, close () { closed = true; clearTimeout(timer) } }
}
