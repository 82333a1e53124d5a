// The login page, shown to other devices (see the node's access rule): logs in with the
// node's login token, or with a NIP-07 signer signing the node's one-time challenge as a
// kind-22242 event. On success the node sets a session cookie and the page reloads.

const error = document.getElementById('login-error')

function fail (message) {
  error.textContent = message
  error.hidden = false
}

async function login (body) {
  const res = await fetch('/api/login', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
  const answer = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(answer.error || `${res.status} ${res.statusText}`)
  location.reload()
}

document.getElementById('token-form').addEventListener('submit', e => {
  e.preventDefault()
  login({ token: e.target.token.value }).catch(err => fail(err.message))
})

document.getElementById('nip07').addEventListener('click', async () => {
  try {
    if (!window.nostr) throw new Error('no NIP-07 signer in this browser: install one, or use the login token')
    const info = await (await fetch('/api/login', { credentials: 'same-origin' })).json()
    const event = await window.nostr.signEvent({
      kind: info.kind,
      created_at: Math.floor(Date.now() / 1000),
      tags: [['relay', location.origin], ['challenge', info.challenge]],
      content: ''
    })
    await login({ event })
  } catch (err) {
    fail(err.message)
  }
})
