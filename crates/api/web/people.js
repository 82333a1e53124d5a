// The people views: a profile (picture, name, about, npub; follow / unfollow; the owner's
// own with an edit form; the author's notes, live) and the follow list (follow by npub,
// unfollow).

import { h, busy } from './dom.js'
import { decodeRef, npub } from './nostr.js'
import { NoteList, avatar, nameEl } from './notes.js'
import { TIMELINE_LIMIT } from './views.js'

function followButton (model, pubkey) {
  const button = h('button', { type: 'button', class: 'follow' })
  const render = () => {
    const following = model.isFollowing(pubkey)
    button.textContent = following ? 'Unfollow' : 'Follow'
    button.dataset.following = String(following)
  }
  button.onclick = () => busy(button, async () => { await model.follow(pubkey, !model.isFollowing(pubkey)); render() })
  render()
  return { button, render }
}

function editForm (model) {
  const f = model.profile(model.me.hex)
  const str = v => typeof v === 'string' ? v : ''
  const name = h('input', { name: 'name', value: str(f.display_name) || str(f.name), maxlength: 64, autocomplete: 'off' })
  const about = h('textarea', { name: 'about', rows: 3, maxlength: 2000, value: str(f.about) })
  const picture = h('input', { name: 'picture', type: 'url', value: str(f.picture), placeholder: 'https://…' })
  const save = h('button', { type: 'submit' }, 'Save profile')
  const done = h('span', { class: 'muted saved' })
  const form = h('form', { class: 'edit' },
    h('h2', null, 'Edit your profile'),
    h('label', null, 'Name', name), h('label', null, 'About', about), h('label', null, 'Picture URL', picture),
    h('div', { class: 'row' }, save, done))
  form.onsubmit = e => {
    e.preventDefault()
    busy(save, async () => {
      const pic = picture.value.trim()
      if (pic && !/^https?:\/\//i.test(pic)) throw new Error('the picture must be an http(s) URL')
      const n = name.value.trim()
      await model.saveProfile({ name: n, display_name: n, about: about.value.trim(), picture: pic })
      done.textContent = 'saved'
    })
  }
  return form
}

export function profileView (model, ref) {
  let pubkey
  try { pubkey = ref === 'me' ? model.me.hex : decodeRef(ref).hex } catch (err) { return { el: h('p', { class: 'error' }, err.message), close () {} } }
  const mine = pubkey === model.me.hex
  const head = h('div', { class: 'profile-head' })
  const follow = mine ? null : followButton(model, pubkey)
  const renderHead = () => {
    const f = model.profile(pubkey)
    head.replaceChildren(avatar(model, pubkey, true),
      h('div', { class: 'who' },
        h('h1', { dataset: { nameOf: pubkey } }, model.name(pubkey)),
        typeof f.about === 'string' ? h('p', { class: 'about' }, f.about) : null,
        h('code', { class: 'npub' }, npub(pubkey)),
        follow ? h('div', { class: 'row' }, follow.button) : null))
  }
  renderHead()
  const form = h('div')
  const list = new NoteList(model)
  const el = h('section', { class: 'view profile' }, head, form, h('h2', null, mine ? 'Your notes' : 'Notes'), list.el)
  const batch = []
  let stored = true
  const sub = model.relays.feed.sub([{ authors: [pubkey], kinds: [0], limit: 1 }, { authors: [pubkey], kinds: [1, 6], limit: TIMELINE_LIMIT }], {
    onevent: ev => {
      model.remember(ev)
      if (ev.kind === 0) return
      if (stored) batch.push(ev)
      else list.add(ev)
    },
    oneose: () => {
      if (!stored) return
      stored = false
      list.renderAll(batch)
      if (mine) form.replaceChildren(editForm(model))
    }
  })
  const offs = [
    model.on('profile', p => { if (p === pubkey) renderHead() }),
    model.on('contacts', () => follow && follow.render())
  ]
  return { el, close () { sub.close(); offs.forEach(off => off()) } }
}

export function followingView (model) {
  const input = h('input', { name: 'npub', placeholder: 'npub1… or hex public key', autocomplete: 'off', spellcheck: 'false' })
  const submit = h('button', { type: 'submit' }, 'Follow')
  const form = h('form', { class: 'follow-form row' }, input, submit)
  const list = h('ul', { class: 'people' })
  const el = h('section', { class: 'view following' }, h('h2', null, 'Follow someone by npub'), form, h('h2', null, 'Following'), list)
  form.onsubmit = e => {
    e.preventDefault()
    busy(submit, async () => {
      const ref = decodeRef(input.value)
      if (ref.type !== 'pubkey') throw new Error('that is a note id, not a person')
      if (model.isFollowing(ref.hex)) throw new Error('you already follow them')
      await model.follow(ref.hex, true)
      input.value = ''
    })
  }
  const render = () => {
    const people = model.follows()
    list.replaceChildren(...(people.length
      ? people.map(pk => {
        const unfollow = h('button', { type: 'button', class: 'unfollow' }, 'Unfollow')
        unfollow.onclick = () => busy(unfollow, () => model.follow(pk, false))
        return h('li', { dataset: { pubkey: pk } }, avatar(model, pk), nameEl(model, pk), h('code', null, npub(pk).slice(0, 16) + '…'), unfollow)
      })
      : [h('li', { class: 'muted' }, model.contactsReady ? 'You follow nobody yet.' : 'loading…')]))
  }
  render()
  const off = model.on('contacts', render)
  return { el, close: off }
}
