// DOM helpers for the starling web client: element building without innerHTML (user text
// only ever becomes text nodes), relative times, the error banner, JSON fetches.

// h('a', { href: '#/', class: 'x', onclick: fn, dataset: { id } }, 'text', child, ...)
export function h (tag, props, ...children) {
  const el = document.createElement(tag)
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue
      if (key === 'class') el.className = value
      else if (key === 'dataset') Object.assign(el.dataset, value)
      else if (key === 'value') el.value = value
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value)
      else if (key in el && typeof value !== 'string') el[key] = value
      else el.setAttribute(key, value === true ? '' : value)
    }
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else el.append(child instanceof Node ? child : String(child))
  }
}

export function now () {
  return Math.floor(Date.now() / 1000)
}

// "5s", "3m", "2h", "4d", or the date.
export function ago (ts) {
  const s = Math.max(0, now() - ts)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86400) return `${Math.floor(s / 3600)}h`
  if (s < 7 * 86400) return `${Math.floor(s / 86400)}d`
  return new Date(ts * 1000).toISOString().slice(0, 10)
}

// Shows a message in the banner at the top until it is dismissed or replaced.
export function showError (err) {
  const box = document.getElementById('error')
  if (!box) return
  const text = err instanceof Error ? err.message : String(err)
  box.replaceChildren(h('span', null, text), h('button', { type: 'button', class: 'link', onclick: () => { box.hidden = true } }, 'dismiss'))
  box.hidden = false
}

// GET or POST JSON on the node; throws the node's {"error": ...} message on failure.
export async function fetchJSON (path, body) {
  const init = body === undefined
    ? { credentials: 'same-origin' }
    : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }
  const res = await fetch(path, init)
  const text = await res.text()
  let data = null
  try { data = JSON.parse(text) } catch { /* not JSON: an axum rejection */ }
  if (!res.ok) throw new Error((data && (data.error || data.Error)) || text || `${res.status} ${res.statusText}`)
  return data
}

// Runs an async action from a button, disabling it meanwhile and showing any error.
export async function busy (button, action) {
  if (button) button.disabled = true
  try {
    return await action()
  } catch (err) {
    showError(err)
  } finally {
    if (button) button.disabled = false
  }
}
