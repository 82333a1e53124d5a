// The page's shared state, fed by the node's WebSockets: the owner's follow list (kind 3),
// profiles (kind 0), notifications (#p = owner), a cache of events by id, and the replies
// and reactions seen per note. Views listen with on(topic, fn); every publish goes
// through publish(): sign (see nostr.js), then EVENT on the node's socket.
//
// Three connections: `main` carries the owner's own subscriptions and publishing, `feed`
// the open view's, `lookup` profiles and events wanted by id. The node answers a REQ
// naming an author it never saw only after asking the network (up to 5 s), and answers a
// connection's messages in order, so such waits stay off the connections that publish.

import { isHex64, shortNpub, templates, threadRefs } from './nostr.js'

const NOTIFY_LIMIT = 100
const CACHE_MAX = 10000
const AUTHORS_PER_FILTER = 500
const MAX_FILTERS = 10

export class Model {
  constructor (me, relays, signer) {
    this.me = me
    this.relays = relays
    this.signer = signer
    this.contacts = null
    this.contactsReady = false
    this.profiles = new Map() // pubkey -> { event, fields }
    this.events = new Map() // id -> event
    this.notifications = new Map() // id -> event
    this.reactions = new Map() // note id -> Map(reaction id -> content)
    this.replies = new Map() // note id -> Set(reply id)
    this.wanted = { profiles: new Set(), events: new Set() }
    this.subs = {}
    this.flushing = {}
    this.listeners = new Map()
  }

  on (topic, fn) {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set())
    this.listeners.get(topic).add(fn)
    return () => this.listeners.get(topic).delete(fn)
  }

  emit (topic, arg) {
    for (const fn of this.listeners.get(topic) || []) fn(arg)
  }

  start () {
    const me = this.me.hex
    this.relays.main.sub([{ authors: [me], kinds: [3], limit: 1 }], {
      onevent: ev => this.setContacts(ev),
      oneose: () => { this.contactsReady = true; this.emit('contacts') }
    })
    this.relays.main.sub([{ '#p': [me], kinds: [1, 6, 7], limit: NOTIFY_LIMIT }], {
      onevent: ev => this.addNotification(ev)
    })
  }

  setContacts (ev) {
    if (ev.kind !== 3 || ev.pubkey !== this.me.hex) return
    if (this.contacts && ev.created_at <= this.contacts.created_at) return
    this.contacts = ev
    if (this.contactsReady) this.emit('contacts')
  }

  follows () {
    const tags = this.contacts ? this.contacts.tags : []
    return [...new Set(tags.filter(t => t[0] === 'p' && isHex64(t[1] || '')).map(t => t[1]))]
  }

  isFollowing (pubkey) {
    return this.follows().includes(pubkey)
  }

  addNotification (ev) {
    if (ev.pubkey === this.me.hex || this.notifications.has(ev.id)) return
    this.notifications.set(ev.id, ev)
    this.remember(ev)
    this.emit('notification', ev)
  }

  lastSeen () {
    return Number(localStorage.getItem('starling.seen') || 0)
  }

  unseen () {
    const seen = this.lastSeen()
    return [...this.notifications.values()].filter(e => e.created_at > seen).length
  }

  markSeen () {
    const newest = Math.max(this.lastSeen(), ...[...this.notifications.values()].map(e => e.created_at))
    localStorage.setItem('starling.seen', String(newest))
    this.emit('seen')
  }

  // Keeps an event by id and counts it as a reply or reaction to its target.
  remember (ev) {
    if (ev.kind === 0) return this.setProfile(ev)
    if (this.events.has(ev.id)) return
    if (this.events.size >= CACHE_MAX) {
      for (const id of [...this.events.keys()].slice(0, CACHE_MAX / 10)) this.events.delete(id)
    }
    this.events.set(ev.id, ev)
    let target = null
    if (ev.kind === 7) {
      target = ev.tags.filter(t => t[0] === 'e').map(t => t[1]).pop()
      if (target) this.countIn(this.reactions, target, () => new Map()).set(ev.id, ev.content)
    } else if (ev.kind === 1) {
      target = threadRefs(ev).parent
      if (target) this.countIn(this.replies, target, () => new Set()).add(ev.id)
    }
    if (target) this.emit('counts', target)
    this.emit('event', ev)
  }

  countIn (map, key, make) {
    if (!map.has(key)) map.set(key, make())
    return map.get(key)
  }

  profile (pubkey) {
    this.wantProfile(pubkey)
    const p = this.profiles.get(pubkey)
    return p ? p.fields : {}
  }

  name (pubkey) {
    const f = this.profile(pubkey)
    const name = typeof f.display_name === 'string' && f.display_name.trim() ? f.display_name : f.name
    return typeof name === 'string' && name.trim() ? name.trim().slice(0, 64) : shortNpub(pubkey)
  }

  setProfile (ev) {
    const old = this.profiles.get(ev.pubkey)
    if (old && old.event.created_at >= ev.created_at) return
    let fields = {}
    try { fields = JSON.parse(ev.content) } catch { /* not JSON: an empty profile */ }
    if (!fields || typeof fields !== 'object' || Array.isArray(fields)) fields = {}
    this.profiles.set(ev.pubkey, { event: ev, fields })
    this.emit('profile', ev.pubkey)
  }

  wantProfile (pubkey) {
    if (!isHex64(pubkey) || this.wanted.profiles.has(pubkey)) return
    this.wanted.profiles.add(pubkey)
    this.later('profiles', () => {
      const authors = [...this.wanted.profiles]
      const filters = []
      for (let i = 0; i < authors.length && filters.length < MAX_FILTERS; i += AUTHORS_PER_FILTER) {
        filters.push({ kinds: [0], authors: authors.slice(i, i + AUTHORS_PER_FILTER) })
      }
      return filters
    }, ev => this.setProfile(ev))
  }

  // The event `id` if the page has it; else asks the node for it (an 'event' follows).
  get (id) {
    if (this.events.has(id)) return this.events.get(id)
    if (isHex64(id) && !this.wanted.events.has(id)) {
      this.wanted.events.add(id)
      this.later('events', () => [{ ids: [...this.wanted.events].slice(-1000) }], ev => this.remember(ev))
    }
    return null
  }

  // Batches wishes made in one turn into one REQ on the lookup connection.
  later (key, filters, onevent) {
    if (this.flushing[key]) return
    this.flushing[key] = true
    setTimeout(() => {
      this.flushing[key] = false
      if (this.subs[key]) this.subs[key].update(filters())
      else this.subs[key] = this.relays.lookup.sub(filters(), { onevent })
    }, 0)
  }

  // Keeps replies and reactions to `ids` coming: updates `previous` (a subscription this
  // returned before) or opens one.
  watchCounts (ids, previous) {
    const filters = [{ kinds: [7], '#e': ids }, { kinds: [1], '#e': ids }]
    if (previous) { previous.update(filters); return previous }
    return this.relays.lookup.sub(filters, { onevent: ev => this.remember(ev) })
  }

  reactionCount (id) {
    return (this.reactions.get(id) || new Map()).size
  }

  replyCount (id) {
    return (this.replies.get(id) || new Set()).size
  }

  async publish (template) {
    const ev = await this.signer.sign(template)
    await this.relays.main.publish(ev)
    this.remember(ev)
    return ev
  }

  async follow (pubkey, yes) {
    if (!this.contactsReady) throw new Error('your follow list is still loading; try again in a moment')
    if (pubkey === this.me.hex) throw new Error('that is you')
    const ev = await this.publish(templates.contacts(this.contacts, pubkey, yes))
    this.setContacts(ev)
    return ev
  }

  async saveProfile (fields) {
    const old = this.profiles.get(this.me.hex)
    const ev = await this.publish(templates.profile(old && old.event, fields))
    this.setProfile(ev)
    return ev
  }
}
