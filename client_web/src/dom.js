// Small DOM vocabulary shared by the views: element creation, polite
// notices, relative times. No framework: each view owns its own nodes.

/**
 * Creates an element. `props` keys: `class`, `text`, `dataset`, `on` (event
 * map), `attrs` (set with setAttribute, for aria-* and data-testid), `style`
 * (an object of CSS properties, e.g. `{'background-color': color}`), anything
 * else is assigned as a property (value, type, disabled, ...).
 *
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {Array<Node|string|null|undefined|false>} [children]
 * @returns {HTMLElement}
 */
export const h = (tag, props = {}, children = []) => {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue
    if (key === 'class') el.className = value
    else if (key === 'text') el.textContent = value
    else if (key === 'testid') el.setAttribute('data-testid', value)
    else if (key === 'dataset') Object.assign(el.dataset, value)
    else if (key === 'style') {
      // Through the CSSOM only: the Content-Security-Policy forbids style attributes, and
      // a map of single properties cannot smuggle in a second declaration.
      for (const [name, prop] of Object.entries(value)) el.style.setProperty(name, String(prop))
    }
    else if (key === 'attrs') {
      for (const [name, attr] of Object.entries(value)) {
        if (name.toLowerCase() === 'style') throw new Error('h: set styles with `style: {...}`')
        if (attr !== undefined && attr !== null && attr !== false) el.setAttribute(name, String(attr))
      }
    } else if (key === 'on') {
      for (const [type, handler] of Object.entries(value)) el.addEventListener(type, handler)
    } else el[key] = value
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    el.append(child)
  }
  return el
}

/** Removes every child of `el` and appends `children`. */
export const replaceChildren = (el, ...children) => {
  el.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false))
}

const toastRoot = () => document.getElementById('toasts')

/**
 * Shows a short message in the polite live region; errors stay longer and
 * can be dismissed.
 *
 * @param {string} message
 * @param {{kind?: 'info'|'error'|'success', timeout?: number}} [opts]
 */
export const notify = (message, { kind = 'info', timeout } = {}) => {
  const root = toastRoot()
  if (!root) return
  const close = h('button', {
    class: 'toast-close',
    type: 'button',
    text: '×',
    attrs: { 'aria-label': 'Dismiss message' }
  })
  const toast = h('div', { class: `toast toast-${kind}`, attrs: { role: kind === 'error' ? 'alert' : null } }, [
    h('span', { class: 'toast-text', text: message }),
    close
  ])
  const remove = () => toast.remove()
  close.addEventListener('click', remove)
  root.append(toast)
  setTimeout(remove, timeout ?? (kind === 'error' ? 9000 : 3500))
}

/**
 * A message with one action button ("Undo"), kept until acted on, dismissed
 * or `timeout` ms; returns the toast element.
 */
export const notifyAction = (message, { label, onAction, timeout = 20000, testid } = {}) => {
  const root = toastRoot()
  if (!root) return null
  const remove = () => toast.remove()
  const action = h('button', {
    type: 'button',
    class: 'toast-action',
    text: label,
    attrs: { 'data-testid': testid ? `${testid}-action` : null },
    on: { click: () => { remove(); onAction() } }
  })
  const close = h('button', {
    class: 'toast-close',
    type: 'button',
    text: '×',
    attrs: { 'aria-label': 'Dismiss message' },
    on: { click: remove }
  })
  const toast = h('div', { class: 'toast toast-info toast-with-action', attrs: { role: 'status', 'data-testid': testid || null } }, [
    h('span', { class: 'toast-text', text: message }),
    action,
    close
  ])
  root.append(toast)
  setTimeout(remove, timeout)
  return toast
}

/** Shows an error from api.js (or anything thrown) politely. */
export const notifyError = (what, err) => {
  const detail = err && err.message ? err.message : String(err)
  notify(`${what}: ${detail}`, { kind: 'error' })
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
const units = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60]
]

/** "3 minutes ago", "yesterday", "just now". */
export const relativeTime = (iso) => {
  if (!iso) return ''
  const then = new Date(iso).getTime()
  if (Number.isNaN(then)) return ''
  const seconds = (then - Date.now()) / 1000
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.round(seconds / size), unit)
  }
  return 'just now'
}

/** Full local date and time, for title attributes and datetime tooltips. */
export const absoluteTime = (iso) => {
  if (!iso) return ''
  const date = new Date(iso)
  return Number.isNaN(date.getTime())
    ? ''
    : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

/** A <time> element showing relative time with the exact time as tooltip. */
export const timeEl = (iso, className = 'time') =>
  h('time', { class: className, dateTime: iso || '', title: absoluteTime(iso), text: relativeTime(iso) })

/** Calls `fn` once `wait` ms after the last call. */
export const debounce = (fn, wait) => {
  let timer = null
  const debounced = (...args) => {
    clearTimeout(timer)
    timer = setTimeout(() => fn(...args), wait)
  }
  debounced.cancel = () => clearTimeout(timer)
  return debounced
}
