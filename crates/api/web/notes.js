// Rendering notes: a card per kind-1 note or kind-6 repost (author, time, text with links
// and nostr: references, a quoted note, and the reply / repost / quote / react actions),
// an avatar, and names that update in place when a profile arrives (data-name-of).

import { h, ago, busy } from './dom.js'
import { decodeRef, noteId, npub, templates, threadRefs } from './nostr.js'

const TOKEN = /(https?:\/\/[^\s<>"]+|nostr:(?:npub|note|nevent|nprofile)1[02-9ac-hj-np-z]+)/gi

export const profileHref = pubkey => `#/p/${npub(pubkey)}`
export const noteHref = id => `#/note/${noteId(id)}`

export function nameEl (model, pubkey) {
  return h('a', { class: 'name', href: profileHref(pubkey), dataset: { nameOf: pubkey } }, model.name(pubkey))
}

// Refreshes every name and avatar of `pubkey` on the page.
export function refreshPerson (model, pubkey) {
  for (const el of document.querySelectorAll(`[data-name-of="${pubkey}"]`)) el.textContent = model.name(pubkey)
  for (const el of document.querySelectorAll(`[data-avatar-of="${pubkey}"]`)) el.replaceWith(avatar(model, pubkey, el.classList.contains('big')))
}

export function avatar (model, pubkey, big = false) {
  const cls = big ? 'avatar big' : 'avatar'
  const picture = model.profile(pubkey).picture
  if (typeof picture === 'string' && /^https?:\/\//i.test(picture)) {
    return h('img', { class: cls, src: picture, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer', dataset: { avatarOf: pubkey } })
  }
  const hue = parseInt(pubkey.slice(0, 4), 16) % 360
  const letter = model.name(pubkey).replace(/^npub1/, '').slice(0, 1).toUpperCase()
  const el = h('span', { class: cls, dataset: { avatarOf: pubkey } }, letter)
  el.style.background = `hsl(${hue} 55% 45%)` // CSSOM: the CSP allows no style attributes
  return el
}

// Text with links for URLs and nostr: references (never markup from the text itself);
// a reference to `shown` (the quoted note, shown below the text) is left out.
export function richText (model, text, shown = null) {
  const out = []
  let last = 0
  for (const m of text.matchAll(TOKEN)) {
    out.push(text.slice(last, m.index))
    last = m.index + m[0].length
    const token = m[0]
    if (/^https?:/i.test(token)) {
      out.push(h('a', { href: token, target: '_blank', rel: 'noopener noreferrer nofollow' }, token))
      continue
    }
    try {
      const ref = decodeRef(token)
      if (ref.hex === shown) {
        // At the end of the text, the blank lines before it go too.
        if (!text.slice(last).trim() && typeof out[out.length - 1] === 'string') out[out.length - 1] = out[out.length - 1].trimEnd()
        continue
      }
      out.push(ref.type === 'pubkey'
        ? h('a', { class: 'mention', href: profileHref(ref.hex), dataset: { nameOf: ref.hex } }, '@' + model.name(ref.hex))
        : h('a', { href: noteHref(ref.hex) }, noteId(ref.hex).slice(0, 14) + '…'))
    } catch { out.push(token) }
  }
  out.push(text.slice(last))
  return out
}

// The note a kind 1 quotes (q tag, else a nostr:note/nevent in its text).
function quotedId (ev) {
  const q = ev.tags.find(t => t[0] === 'q' && t[1])
  if (q) return q[1]
  const m = ev.content.match(/nostr:(note1[0-9a-z]+|nevent1[0-9a-z]+)/)
  try { return m ? decodeRef(m[1]).hex : null } catch { return null }
}

// A placeholder that becomes the card of event `id` once the page has it.
export function embedded (model, id) {
  const ev = model.get(id)
  if (ev) return noteCard(model, ev, { embedded: true })
  return h('div', { class: 'embed pending', dataset: { waitFor: id } }, h('a', { href: noteHref(id) }, 'note ' + noteId(id).slice(0, 14) + '…'))
}

// Replaces the placeholders waiting for `ev`.
export function fillEmbeds (model, ev) {
  for (const el of document.querySelectorAll(`[data-wait-for="${ev.id}"]`)) el.replaceWith(noteCard(model, ev, { embedded: true }))
}

function repostedEvent (model, ev) {
  try {
    const inner = JSON.parse(ev.content)
    if (inner && typeof inner.id === 'string' && inner.kind === 1) return inner
  } catch { /* empty or not JSON: look the target up */ }
  return null
}

export function noteCard (model, ev, opts = {}) {
  if (ev.kind === 6) {
    const inner = repostedEvent(model, ev)
    const target = ev.tags.find(t => t[0] === 'e')
    return h('article', { class: 'note repost', dataset: { id: ev.id } },
      h('div', { class: 'context' }, nameEl(model, ev.pubkey), ' reposted · ', ago(ev.created_at)),
      inner ? noteCard(model, inner, { embedded: true, actions: true }) : (target ? embedded(model, target[1]) : null))
  }
  const { parent } = threadRefs(ev)
  const parentEv = parent && model.events.get(parent)
  const quoted = opts.embedded ? null : quotedId(ev)
  const href = noteHref(ev.id)
  return h('article', { class: opts.embedded ? 'note embed' : 'note', dataset: { id: ev.id, author: ev.pubkey } },
    avatar(model, ev.pubkey),
    h('div', { class: 'body' },
      h('div', { class: 'meta' }, nameEl(model, ev.pubkey), ' ', h('a', { class: 'time', href }, ago(ev.created_at))),
      parent ? h('div', { class: 'context' }, 'replying to ', parentEv ? nameEl(model, parentEv.pubkey) : h('a', { href: noteHref(parent) }, 'a note')) : null,
      h('div', { class: 'content' }, richText(model, ev.content, quoted)),
      quoted ? embedded(model, quoted) : null,
      (!opts.embedded || opts.actions) ? actions(model, ev, href) : null))
}

function actions (model, ev, href) {
  const react = h('button', { type: 'button', class: 'act react', title: 'React +' }, '♡ Like ', h('span', { dataset: { reactsOf: ev.id } }, model.reactionCount(ev.id) || ''))
  react.onclick = () => busy(react, () => model.publish(templates.reaction(ev)))
  const repost = h('button', { type: 'button', class: 'act repost', title: 'Repost' }, 'Repost')
  repost.onclick = () => busy(repost, async () => { await model.publish(templates.repost(ev)); repost.classList.add('done') })
  return h('div', { class: 'actions' },
    h('a', { class: 'act reply', href, title: 'Reply' }, 'Reply ', h('span', { dataset: { repliesOf: ev.id } }, model.replyCount(ev.id) || '')),
    repost,
    h('a', { class: 'act quote', href: `${href}/quote`, title: 'Quote' }, 'Quote'),
    react)
}

// Updates the counters of note `id` on the page.
export function refreshCounts (model, id) {
  for (const el of document.querySelectorAll(`[data-reacts-of="${id}"]`)) el.textContent = model.reactionCount(id) || ''
  for (const el of document.querySelectorAll(`[data-replies-of="${id}"]`)) el.textContent = model.replyCount(id) || ''
}

// A newest-first (or oldest-first) list of note cards that takes events one at a time, de-duplicated.
export class NoteList {
  constructor (model, { filter = () => true, oldestFirst = false } = {}) {
    this.model = model
    this.filter = filter
    this.sign = oldestFirst ? -1 : 1
    this.el = h('div', { class: 'notes' })
    this.items = [] // { ev, el } newest first
    this.ids = new Set()
  }

  // Renders a batch at once (the stored events before EOSE).
  renderAll (events) {
    const fresh = events.filter(ev => !this.ids.has(ev.id) && this.filter(ev))
    for (const ev of fresh) this.ids.add(ev.id)
    this.items = [...this.items, ...fresh.map(ev => ({ ev, el: null }))].sort((a, b) => this.sign * (b.ev.created_at - a.ev.created_at))
    for (const item of this.items) if (!item.el) item.el = noteCard(this.model, item.ev)
    this.el.replaceChildren(...this.items.map(i => i.el))
  }

  add (ev) {
    if (this.ids.has(ev.id) || !this.filter(ev)) return
    this.ids.add(ev.id)
    const item = { ev, el: noteCard(this.model, ev) }
    const at = this.items.findIndex(i => this.sign * (ev.created_at - i.ev.created_at) > 0)
    if (at < 0) { this.items.push(item); this.el.append(item.el) } else { this.el.insertBefore(item.el, this.items[at].el); this.items.splice(at, 0, item) }
  }

  // The ids of the listed notes (a repost counts as the note it reposts).
  noteIds () {
    return this.items.map(i => i.ev.kind === 6 ? (i.ev.tags.find(t => t[0] === 'e') || [])[1] : i.ev.id).filter(Boolean)
  }
}
