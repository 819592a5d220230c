// Who is here: the local person's name (remembered), the colour every name
// gets (the same function colours authors in the history), and the list of
// people currently in the document, read from Yjs awareness.

import { h, replaceChildren } from './dom.js'

const NAME_KEY = 'palimpsest.name'
/** The longest name this browser lets you choose. */
const MAX_NAME = 40
/** The longest name shown for anyone, whatever their client sends. */
export const MAX_SHOWN_NAME = 64

const adjectives = ['Amber', 'Brisk', 'Calm', 'Deft', 'Eager', 'Fern', 'Gentle', 'Hazel', 'Ivory', 'Jade',
  'Keen', 'Lucid', 'Mellow', 'Nimble', 'Olive', 'Plucky', 'Quiet', 'Russet', 'Sage', 'Tidy']
const animals = ['Badger', 'Crane', 'Dolphin', 'Egret', 'Falcon', 'Gecko', 'Heron', 'Ibis', 'Jay', 'Kestrel',
  'Lynx', 'Marten', 'Newt', 'Otter', 'Puffin', 'Quail', 'Robin', 'Stoat', 'Tern', 'Wren']

const pick = (list) => list[Math.floor(Math.random() * list.length)]

// Control characters (C0, DEL, C1), direction overrides and isolates, zero-width
// space and joiner-less marks, line and paragraph separators, the BOM: nothing a
// name needs, and what a name could use to reorder or hide the text around it.
const INVISIBLE = /[\p{Cc}\u200B\u200E\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF\u2028\u2029]/gu
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * A display name fit to show: a string (anything else gives ''), without
 * control or direction characters, whitespace collapsed, trimmed, at most
 * `max` characters (code points, so no emoji is cut in half).
 */
export const safeName = (name, max = MAX_SHOWN_NAME) => {
  if (typeof name !== 'string') return ''
  // Bound the work first: a hostile name may be megabytes long.
  const clean = name.slice(0, max * 8)
    .replace(LONE_SURROGATE, '\uFFFD')
    .replace(/\s+/g, ' ') // tabs and line breaks become spaces
    .replace(INVISIBLE, '')
    .replace(/ {2,}/g, ' ')
    .trim()
  const chars = Array.from(clean)
  return chars.length > max ? chars.slice(0, max).join('').trim() : clean
}

/** Trims and shortens a display name of our own; empty when nothing usable is left. */
export const cleanName = (name) => safeName(name == null ? '' : String(name), MAX_NAME)

const HEX_COLOR = /^#[0-9a-f]{6}$/i

/**
 * Someone else's presence as their client announced it (the awareness `user`
 * field), checked before any use: `name` is a safe name ('Anonymous' when
 * none is left), `color` is `#rrggbb` (anything else is replaced by the
 * colour of their client id) and `colorLight` is derived from it. Nothing
 * the remote client sent reaches the page in any other form.
 *
 * @param {any} user
 * @param {number} clientId
 * @returns {{name: string, color: string, colorLight: string}}
 */
export const remoteUser = (user, clientId) => {
  const raw = user && typeof user === 'object' ? user : {}
  const name = safeName(raw.name) || 'Anonymous'
  const color = typeof raw.color === 'string' && HEX_COLOR.test(raw.color)
    ? raw.color.toLowerCase()
    : colorFor(`client ${clientId >>> 0}`).color
  return { name, color, colorLight: `${color}33` }
}

/** The name this browser uses, made up (and remembered) on first visit. */
export const loadName = () => {
  try {
    const stored = cleanName(localStorage.getItem(NAME_KEY))
    if (stored) return stored
  } catch {}
  const made = `${pick(adjectives)} ${pick(animals)}`
  saveName(made)
  return made
}

export const saveName = (name) => {
  try {
    localStorage.setItem(NAME_KEY, name)
  } catch {}
}

/** 32-bit FNV-1a: small, stable across browsers, spreads similar names apart. */
const hash = (text) => {
  let value = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    value ^= text.charCodeAt(i)
    value = Math.imul(value, 0x01000193)
  }
  return value >>> 0
}

/** WCAG relative luminance of a #rrggbb colour. */
const luminance = (hex) => {
  const channel = (i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4
  }
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

const hslToHex = (hue, saturation, lightness) => {
  const s = saturation / 100
  const l = lightness / 100
  const k = (n) => (n + hue / 30) % 12
  const a = s * Math.min(l, 1 - l)
  const channel = (n) => {
    const c = l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)))
    return Math.round(c * 255).toString(16).padStart(2, '0')
  }
  return `#${channel(0)}${channel(8)}${channel(4)}`
}

// The document's contributors in the order they first took part (the server
// keeps that order): the n-th gets the n-th hue of a golden-angle walk, so
// any two contributors' hues are at least ~20 degrees apart for up to 18 people,
// and everyone sees the same colours. Names not (yet) among them fall back on
// a hash of the name.
const assigned = new Map()
const GOLDEN_ANGLE = 137.508

/** Gives the document's contributors (oldest first) their colours. */
export const setContributors = (names) => {
  let changed = false
  for (const name of names || []) {
    const key = cleanName(typeof name === 'string' ? name : String(name)).toLowerCase()
    if (key && !assigned.has(key)) {
      assigned.set(key, assigned.size)
      changed = true
    }
  }
  return changed
}

const readable = (hue, lightness) => {
  let color = hslToHex(hue, 62, lightness)
  while (1.05 / (luminance(color) + 0.05) < 4.6 && lightness > 10) {
    lightness -= 2
    color = hslToHex(hue, 62, lightness)
  }
  return color
}

/**
 * The colour of a person: by their place among the document's contributors,
 * else derived from their name, so that everyone sees the same colour for the
 * same name, in the editor and in the history.
 *
 * @param {string} name
 * @returns {{color: string, colorLight: string}} `color` is dark enough for
 *   white text; `colorLight` is a translucent tint for selections and marks.
 */
export const colorFor = (name) => {
  const key = cleanName(name).toLowerCase()
  const place = assigned.get(key)
  if (place !== undefined) {
    const color = readable((210 + place * GOLDEN_ANGLE) % 360, place % 2 === 0 ? 42 : 34)
    return { color, colorLight: `${color}33` }
  }
  const value = hash(key || '?')
  const hue = value % 360
  // Two lightness steps so neighbouring hues still differ; then darker until
  // white text on it passes WCAG AA (4.5:1): yellows and greens need it.
  let lightness = (value >>> 9) % 2 === 0 ? 42 : 34
  let color = hslToHex(hue, 62, lightness)
  while (1.05 / (luminance(color) + 0.05) < 4.6 && lightness > 10) {
    lightness -= 2
    color = hslToHex(hue, 62, lightness)
  }
  return { color, colorLight: `${color}33` }
}

/** Initials for an avatar: "Sage Otter" -> "SO". */
export const initials = (name) => {
  const words = cleanName(name).split(' ').filter(Boolean)
  if (words.length === 0) return '?'
  const letters = words.length === 1 ? words[0].slice(0, 2) : words[0][0] + words[words.length - 1][0]
  return letters.toUpperCase()
}

/** A round coloured badge with initials. */
export const avatar = (name, { size = 'md', title, color = colorFor(name).color } = {}) => {
  return h('span', {
    class: `avatar avatar-${size}`,
    text: initials(name),
    style: { 'background-color': HEX_COLOR.test(color) ? color : colorFor(name).color },
    title: title || name,
    attrs: { 'aria-hidden': 'true' }
  })
}

/**
 * Sets the local awareness `user` field that y-codemirror.next draws.
 * `colorKey` is what the history calls this person (the actor): the name
 * itself, or the user id when a token fixes the identity.
 */
export const announce = (awareness, name, colorKey = name) => {
  const { color, colorLight } = colorFor(colorKey)
  awareness.setLocalStateField('user', { name, color, colorLight })
}

/**
 * Keeps `listEl` showing everyone in the document (local person first).
 * Returns a function that stops listening.
 *
 * @param {import('y-protocols/awareness').Awareness} awareness
 * @param {HTMLElement} listEl
 * @param {HTMLElement} [countEl] gets "3 people here"
 */
export const bindPeopleList = (awareness, listEl, countEl) => {
  const render = () => {
    const people = []
    for (const [clientId, state] of awareness.getStates()) {
      if (!state || typeof state !== 'object' || !state.user) continue
      const { name, color } = remoteUser(state.user, clientId)
      people.push({ clientId, name, color, self: clientId === awareness.clientID })
    }
    people.sort((a, b) => (b.self - a.self) || a.name.localeCompare(b.name))
    replaceChildren(listEl, ...people.map((person) =>
      h('li', {
        class: 'person' + (person.self ? ' person-self' : ''),
        dataset: { clientId: String(person.clientId), name: person.name },
        attrs: { 'data-testid': 'person' }
      }, [
        avatar(person.name, { size: 'sm', color: person.color }),
        h('span', { class: 'person-name', text: person.name }),
        person.self ? h('span', { class: 'person-you', text: '(you)' }) : null
      ])
    ))
    if (countEl) {
      const n = people.length
      countEl.textContent = n === 1 ? 'Only you' : `${n} people`
      countEl.title = people.map((p) => p.name + (p.self ? ' (you)' : '')).join(', ')
    }
  }
  awareness.on('change', render)
  render()
  return () => awareness.off('change', render)
}

/**
 * A display name for an author or contributor as the API gives it: a plain
 * string, or an object with a name (or an id).
 */
export const actorName = (actor) => {
  if (typeof actor === 'string') return cleanName(actor) || 'Unknown'
  if (actor && typeof actor === 'object') return cleanName(actor.name || actor.display_name || actor.id) || 'Unknown'
  return 'Unknown'
}

/**
 * The "your name" field: shows the remembered name and calls `onChange`
 * with a cleaned, saved name when the person commits an edit (Enter or blur).
 * With `identity` (from an access token) the name is fixed and only shown.
 */
export const nameField = (onChange, identity = null) => {
  if (identity) {
    return h('label', { class: 'name-field', title: 'Your name comes from your access token' }, [
      h('span', { class: 'name-swatch', style: { 'background-color': colorFor(identity.userId).color }, attrs: { 'aria-hidden': 'true' } }),
      h('span', { class: 'visually-hidden', text: 'Your name' }),
      h('input', {
        class: 'name-input',
        type: 'text',
        value: identity.name,
        readOnly: true,
        attrs: { 'data-testid': 'name-input', 'aria-label': 'Your name (from your access token)' }
      })
    ])
  }
  const input = h('input', {
    class: 'name-input',
    type: 'text',
    value: loadName(),
    maxLength: MAX_NAME,
    autocomplete: 'nickname',
    spellcheck: false,
    attrs: { 'data-testid': 'name-input', 'aria-label': 'Your name, shown to others' }
  })
  let committed = input.value
  const commit = () => {
    const name = cleanName(input.value)
    if (!name) {
      input.value = committed
      return
    }
    input.value = name
    if (name === committed) return
    committed = name
    saveName(name)
    swatch.style.backgroundColor = colorFor(name).color
    onChange(name)
  }
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault()
      commit()
      input.blur()
    } else if (event.key === 'Escape') {
      input.value = committed
      input.blur()
    }
  })
  input.addEventListener('change', commit)
  const swatch = h('span', { class: 'name-swatch', style: { 'background-color': colorFor(committed).color }, attrs: { 'aria-hidden': 'true' } })
  return h('label', { class: 'name-field', title: 'Your name, shown to others' }, [
    swatch,
    h('span', { class: 'visually-hidden', text: 'Your name' }),
    input
  ])
}
