// The little of Nostr the page needs, without a library: NIP-19 bech32 (npub, note, and
// reading nprofile/nevent), the NIP-01 event id (SHA-256 through crypto.subtle, where the
// browser offers it), the templates of the events the page publishes (the same tags the
// starling CLI writes), and signing: a NIP-07 signer (window.nostr) holding the owner's
// key when there is one, else the node (POST /api/sign) when it holds the key.

import { fetchJSON, now } from './dom.js'

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]

function polymod (values) {
  let chk = 1
  for (const v of values) {
    const top = chk >>> 25
    chk = ((chk & 0x1ffffff) << 5) ^ v
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i]
  }
  return chk
}

function hrpExpand (hrp) {
  const codes = [...hrp].map(c => c.charCodeAt(0))
  return [...codes.map(c => c >> 5), 0, ...codes.map(c => c & 31)]
}

function convertBits (data, from, to, pad) {
  let acc = 0; let bits = 0; const out = []; const max = (1 << to) - 1
  for (const v of data) {
    acc = (acc << from) | v
    bits += from
    while (bits >= to) { bits -= to; out.push((acc >>> bits) & max) }
    acc &= (1 << bits) - 1
  }
  if (pad && bits > 0) out.push((acc << (to - bits)) & max)
  else if (!pad && (bits >= from || ((acc << (to - bits)) & max))) throw new Error('bad bech32 padding')
  return out
}

export function bech32Encode (hrp, bytes) {
  const data = convertBits(bytes, 8, 5, true)
  const mod = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ 1
  const check = [0, 1, 2, 3, 4, 5].map(i => (mod >>> (5 * (5 - i))) & 31)
  return hrp + '1' + [...data, ...check].map(d => CHARSET[d]).join('')
}

export function bech32Decode (text) {
  const str = text.trim().toLowerCase()
  const sep = str.lastIndexOf('1')
  if (sep < 1 || str.length - sep < 7) throw new Error('not bech32')
  const hrp = str.slice(0, sep)
  const values = [...str.slice(sep + 1)].map(c => {
    const v = CHARSET.indexOf(c)
    if (v < 0) throw new Error('not bech32')
    return v
  })
  if (polymod([...hrpExpand(hrp), ...values]) !== 1) throw new Error('bad bech32 checksum')
  return { hrp, bytes: convertBits(values.slice(0, -6), 5, 8, false) }
}

export const toHex = bytes => bytes.map(b => b.toString(16).padStart(2, '0')).join('')
export const fromHex = hex => hex.match(/../g).map(b => parseInt(b, 16))
export const isHex64 = s => /^[0-9a-f]{64}$/.test(s)

// Encodings are asked for again and again while rendering: kept (bounded) once computed.
const encoded = new Map()
function encode (hrp, hex) {
  const key = hrp + hex
  let text = encoded.get(key)
  if (text === undefined) {
    if (encoded.size > 20000) encoded.clear()
    text = bech32Encode(hrp, fromHex(hex))
    encoded.set(key, text)
  }
  return text
}
export const npub = hex => encode('npub', hex)
export const noteId = hex => encode('note', hex)
export const shortNpub = hex => { const n = npub(hex); return `${n.slice(0, 10)}…${n.slice(-4)}` }

// npub, note, nprofile, nevent (with or without "nostr:"), or 64 hex (a public key unless
// `hexIs` says otherwise) -> { type: 'pubkey' | 'event', hex }.
export function decodeRef (text, hexIs = 'pubkey') {
  const t = text.trim().replace(/^nostr:/i, '')
  if (isHex64(t.toLowerCase())) return { type: hexIs, hex: t.toLowerCase() }
  const { hrp, bytes } = bech32Decode(t)
  if (hrp === 'npub' && bytes.length === 32) return { type: 'pubkey', hex: toHex(bytes) }
  if (hrp === 'note' && bytes.length === 32) return { type: 'event', hex: toHex(bytes) }
  if (hrp === 'nprofile' || hrp === 'nevent') {
    for (let i = 0; i + 2 <= bytes.length; i += 2 + bytes[i + 1]) {
      if (bytes[i] === 0 && bytes[i + 1] === 32) {
        return { type: hrp === 'nprofile' ? 'pubkey' : 'event', hex: toHex(bytes.slice(i + 2, i + 34)) }
      }
    }
  }
  throw new Error(`${t.slice(0, 20)}… is not an npub, note or hex key`)
}

// The NIP-01 id of an event, or null where the browser has no crypto.subtle (a page
// served over plain HTTP to another device): the node checks every id anyway.
export async function eventId (ev) {
  if (!globalThis.crypto || !crypto.subtle) return null
  const text = JSON.stringify([0, ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content])
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))
  return toHex([...new Uint8Array(hash)])
}

const tagValues = (ev, name) => ev.tags.filter(t => t[0] === name && t[1]).map(t => t[1])

// The NIP-10 root and parent of a reply (marked tags, or the positional convention).
export function threadRefs (ev) {
  const es = ev.tags.filter(t => t[0] === 'e' && isHex64(t[1] || ''))
  if (!es.length) return { root: null, parent: null }
  const root = es.find(t => t[3] === 'root')
  const reply = es.find(t => t[3] === 'reply')
  if (root || reply) return { root: (root || reply)[1], parent: (reply || root)[1] }
  return { root: es[0][1], parent: es[es.length - 1][1] }
}

export function mentionTags (text) {
  const tags = []
  for (const m of text.matchAll(/nostr:(npub1[0-9a-z]+|nprofile1[0-9a-z]+)/g)) {
    try { tags.push(['p', decodeRef(m[1]).hex]) } catch { /* not a valid reference: plain text */ }
  }
  return tags
}

export const templates = {
  note: text => ({ kind: 1, content: text, tags: mentionTags(text) }),
  // A NIP-10 reply: marked root/reply e-tags and p-tags for everyone in the thread.
  reply (parent, text, self) {
    const { root } = threadRefs(parent)
    const tags = root && root !== parent.id
      ? [['e', root, '', 'root'], ['e', parent.id, '', 'reply']]
      : [['e', parent.id, '', 'root']]
    const people = [parent.pubkey, ...tagValues(parent, 'p')].filter(p => p !== self && isHex64(p))
    for (const p of new Set(people)) tags.push(['p', p])
    return { kind: 1, content: text, tags: [...tags, ...mentionTags(text)] }
  },
  repost: ev => ({ kind: 6, content: JSON.stringify(ev), tags: [['e', ev.id, ''], ['p', ev.pubkey]] }),
  quote: (ev, text) => ({ kind: 1, content: `${text}\n\nnostr:${noteId(ev.id)}`, tags: [['q', ev.id], ['p', ev.pubkey], ...mentionTags(text)] }),
  reaction: (ev, content = '+') => ({ kind: 7, content, tags: [['e', ev.id], ['p', ev.pubkey]] }),
  // The follow list `previous` with `pubkey` added or removed; everything else kept.
  contacts (previous, pubkey, follow) {
    const tags = (previous ? previous.tags : []).filter(t => !(t[0] === 'p' && t[1] === pubkey))
    if (follow) tags.push(['p', pubkey])
    return { kind: 3, content: previous ? previous.content : '', tags, created_at: after(previous) }
  },
  profile (previous, fields) {
    let old = {}
    try { old = previous ? JSON.parse(previous.content) : {} } catch { /* a broken profile: start anew */ }
    return { kind: 0, content: JSON.stringify({ ...old, ...fields }), tags: [], created_at: after(previous) }
  }
}

// A created_at after `previous`, so a replaceable event always supersedes it.
function after (previous) {
  return previous && previous.created_at >= now() ? previous.created_at + 1 : now()
}

// Signs templates for the owner: with a NIP-07 signer holding the owner's key if the
// browser has one, else with the node's copy of the key.
export class Signer {
  constructor (me) {
    this.me = me
    this.nip07 = null // true/false once asked
  }

  async usesNip07 () {
    if (!window.nostr) return false
    if (this.nip07 === null) {
      try { this.nip07 = (await window.nostr.getPublicKey()) === this.me.hex } catch { this.nip07 = false }
    }
    return this.nip07
  }

  async describe () {
    if (await this.usesNip07()) return 'your NIP-07 signer'
    return this.me.node_signs ? 'this node (it holds your key)' : 'nothing: install a NIP-07 signer'
  }

  async sign (template) {
    const t = { created_at: now(), ...template }
    let ev
    if (await this.usesNip07()) ev = await window.nostr.signEvent(t)
    else if (this.me.node_signs) ev = await fetchJSON('/api/sign', t)
    else throw new Error('this node holds only your npub: install a NIP-07 signer (a browser extension) to post')
    if (ev.pubkey !== this.me.hex || ev.kind !== t.kind || ev.content !== t.content || JSON.stringify(ev.tags) !== JSON.stringify(t.tags)) {
      throw new Error('the signer returned a different event than asked for')
    }
    const id = await eventId(ev)
    if (id !== null && id !== ev.id) throw new Error('the signed event has a wrong id')
    return ev
  }
}
