// The note views: the home timeline (the owner's and followed authors' notes and reposts,
// live), a thread (a note, its ancestors, its replies, live, with the reply or quote
// form), and notifications (replies, mentions, reposts and reactions addressed to the
// owner). Each view is { el, close() }; close() ends its subscriptions.

import { h, busy } from './dom.js'
import { templates, threadRefs, decodeRef } from './nostr.js'
import { NoteList, embedded, nameEl, noteCard } from './notes.js'

export const TIMELINE_LIMIT = 50

export function composer (model, { placeholder, button = 'Post', template = text => templates.note(text), onposted = () => {} }) {
  const text = h('textarea', { name: 'compose', placeholder, rows: 3, maxlength: 10000 })
  const submit = h('button', { type: 'submit' }, button)
  const form = h('form', { class: 'compose' }, text, h('div', { class: 'row' }, submit))
  form.onsubmit = e => {
    e.preventDefault()
    const t = text.value.trim()
    if (!t) return
    busy(submit, async () => {
      const ev = await model.publish(template(t))
      text.value = ''
      onposted(ev)
    })
  }
  return form
}

// Runs `render` and the layout it causes, and records the time as a performance measure.
function measured (name, render) {
  const start = performance.now()
  render()
  void document.body.offsetHeight
  performance.measure(name, { start, end: performance.now() })
}

// Keeps reply and reaction counts coming for the notes of `list`.
function countsFor (model, list, previous) {
  const ids = list.noteIds().slice(0, 500)
  return ids.length ? model.watchCounts(ids, previous) : previous
}

export function homeView (model) {
  const status = h('p', { class: 'muted status' }, 'loading your timeline…')
  const holder = h('div')
  const el = h('section', { class: 'view home' },
    composer(model, { placeholder: 'What is happening?' }), status, holder)
  let sub = null
  let counts = null
  let key = null
  const subscribe = () => {
    if (!model.contactsReady) return
    const authors = [model.me.hex, ...model.follows()]
    if (authors.sort().join() === key) return
    key = authors.join()
    if (sub) sub.close()
    const list = new NoteList(model)
    holder.replaceChildren(list.el)
    const describe = () => { status.textContent = `${authors.length - 1} followed · ${list.items.length} notes · live` }
    const batch = []
    let stored = true
    sub = model.relays.feed.sub([{ authors, kinds: [1, 6], limit: TIMELINE_LIMIT }], {
      onevent: ev => {
        model.remember(ev)
        if (stored) batch.push(ev)
        else { list.add(ev); counts = countsFor(model, list, counts); describe() }
      },
      oneose: () => {
        if (!stored) return
        stored = false
        measured('timeline-render', () => list.renderAll(batch))
        el.dataset.rendered = String(batch.length)
        describe()
        counts = countsFor(model, list, counts)
      }
    })
  }
  const off = model.on('contacts', subscribe)
  subscribe()
  return {
    el,
    close () { off(); if (sub) sub.close(); if (counts) counts.close() }
  }
}

export function threadView (model, ref, mode) {
  let id
  try { id = decodeRef(ref, 'event').hex } catch (err) { return { el: h('p', { class: 'error' }, err.message), close () {} } }
  const ancestors = h('div', { class: 'ancestors' })
  const target = h('div', { class: 'target' }, h('p', { class: 'muted' }, 'loading…'))
  const form = h('div')
  const replies = new NoteList(model, { oldestFirst: true, filter: ev => ev.id !== id })
  const el = h('section', { class: 'view thread' }, ancestors, target, form, h('h2', null, 'Replies'), replies.el)
  let shown = false
  let counts = null
  const show = ev => {
    shown = true
    target.replaceChildren(noteCard(model, ev))
    const { root, parent } = threadRefs(ev)
    for (const up of new Set([root, parent].filter(Boolean))) ancestors.append(embedded(model, up))
    form.replaceChildren(mode === 'quote'
      ? composer(model, { placeholder: 'Add your comment', button: 'Quote', template: t => templates.quote(ev, t), onposted: () => { location.hash = '#/' } })
      : composer(model, { placeholder: `Reply to ${model.name(ev.pubkey)}`, button: 'Reply', template: t => templates.reply(ev, t, model.me.hex) }))
  }
  const sub = model.relays.feed.sub([{ ids: [id] }, { '#e': [id], kinds: [1] }], {
    onevent: ev => {
      model.remember(ev)
      if (ev.id === id) { if (!shown) show(ev) } else replies.add(ev)
      counts = countsFor(model, { noteIds: () => [id, ...replies.noteIds()] }, counts)
    },
    oneose: () => {
      if (!shown) target.replaceChildren(h('p', { class: 'muted' }, 'This node does not have that note (yet).'))
    }
  })
  return { el, close () { sub.close(); if (counts) counts.close() } }
}

function notificationItem (model, ev) {
  let what, body
  if (ev.kind === 7) {
    const target = ev.tags.filter(t => t[0] === 'e').map(t => t[1]).pop()
    what = ` reacted ${ev.content === '+' ? '♡' : ev.content.slice(0, 16)} to`
    body = target ? embedded(model, target) : null
  } else if (ev.kind === 6) {
    const target = ev.tags.find(t => t[0] === 'e')
    what = ' reposted'
    body = target ? embedded(model, target[1]) : null
  } else {
    what = threadRefs(ev).parent ? ' replied' : ' mentioned you'
    body = noteCard(model, ev)
  }
  const kind = { 7: 'reaction', 6: 'repost' }[ev.kind] || (threadRefs(ev).parent ? 'reply' : 'mention')
  return h('div', { class: 'notif', dataset: { kind, id: ev.id } },
    h('div', { class: 'context' }, nameEl(model, ev.pubkey), what), body)
}

export function notificationsView (model) {
  const list = h('div', { class: 'notes' })
  const el = h('section', { class: 'view notifications' }, h('h2', null, 'Notifications'), list)
  const render = () => {
    const all = [...model.notifications.values()].sort((a, b) => b.created_at - a.created_at)
    list.replaceChildren(...(all.length ? all.map(ev => notificationItem(model, ev)) : [h('p', { class: 'muted' }, 'Nothing yet: replies, mentions, reposts and reactions to you show up here.')]))
    model.markSeen()
  }
  render()
  const off = model.on('notification', render)
  return { el, close: off }
}
