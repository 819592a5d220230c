// Pieces of the app's frame shared by both pages: the brand link and the
// connection and save status pills.

import { h } from './dom.js'

/** The logo and name, linking back to the document list. */
export const brand = ({ compact = false, href = '/' } = {}) =>
  h('a', { class: 'brand' + (compact ? ' brand-compact' : ''), href, title: 'All documents' }, [
    h('span', { class: 'brand-mark', attrs: { 'aria-hidden': 'true' } }, ['P']),
    h('span', { class: 'brand-name', text: 'Palimpsest' }),
    h('span', { class: 'visually-hidden', text: ': all documents' })
  ])

// The visible text is the lowercase state word (styles.css capitalises it),
// so the text and data-state agree for scripts and tests.
const connectionLabels = {
  connecting: ['reconnecting', 'connecting', 'Connecting to the server'],
  connected: ['connected', 'connected', 'Connected: changes from others appear live'],
  reconnecting: ['reconnecting', 'reconnecting', 'Lost the connection; trying again. You can keep writing.'],
  offline: ['offline', 'offline', 'Offline: you can keep writing; changes are sent when you are back online.']
}

const saveLabels = {
  saved: ['Saved', 'Every change is safely stored on the server'],
  saving: ['Saving…', 'Sending your latest changes'],
  unsaved: ['Unsaved changes (offline)', 'Your changes are kept here and sent when the connection returns'],
  offline: ['No unsaved changes', 'Nothing of yours is waiting to be sent'],
  readonly: ['Read only', 'You can read this document and see others edit it, but not change it']
}

/**
 * A pill showing the connection state. `data-state` is one of connected,
 * reconnecting, offline (a first connection attempt counts as reconnecting).
 */
export const connectionPill = () => {
  const text = h('span', { class: 'pill-text' })
  const el = h('span', {
    class: 'pill pill-conn',
    attrs: { 'data-testid': 'conn-status', role: 'status', 'aria-live': 'polite' }
  }, [h('span', { class: 'pill-dot', attrs: { 'aria-hidden': 'true' } }), text])
  const set = (state) => {
    const [dataState, label, title] = connectionLabels[state] || connectionLabels.reconnecting
    el.dataset.state = dataState
    el.dataset.phase = state
    el.title = title
    text.textContent = label
  }
  set('connecting')
  return { el, set }
}

/**
 * A pill showing whether the local edits are durably saved. `data-state` is
 * saved, saving, unsaved, offline (offline with nothing waiting), or
 * readonly (this person may not edit), and is
 * always current. The visible label (and `data-shown`, which the styles key
 * on) waits a moment before showing "Saving…", so typing does not make the
 * pill flicker on every keystroke.
 */
export const savePill = () => {
  const text = h('span', { class: 'pill-text' })
  const el = h('span', {
    class: 'pill pill-save',
    attrs: { 'data-testid': 'save-status', 'aria-live': 'polite' }
  }, [h('span', { class: 'pill-icon', attrs: { 'aria-hidden': 'true' } }), text])
  let timer = null
  const show = (state) => {
    const [label, title] = saveLabels[state] || saveLabels.saving
    el.dataset.shown = state
    el.title = title
    text.textContent = label
  }
  const set = (state) => {
    el.dataset.state = state
    clearTimeout(timer)
    if (state === 'saving' && el.dataset.shown === 'saved') timer = setTimeout(() => show(state), 400)
    else show(state)
  }
  set('offline')
  return { el, set }
}
