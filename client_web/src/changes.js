// A diff from the API drawn over the text at its end: inserted words marked
// in their author's colour, deleted words struck through in the colour of who
// deleted them, and next/previous navigation that scrolls to each change.

import { h, replaceChildren } from './dom.js'
import { actorName, colorFor } from './presence.js'

/**
 * The nodes of the text at the diff's end with its changes marked; null when
 * `changes` does not spell `newText` (then the caller shows the plain text).
 * Also the authors with what each inserted and deleted (in characters).
 *
 * @param {string} newText
 * @param {Array<{op: string, text: string, author?: any}>} changes
 */
export const changeNodes = (newText, changes) => {
  if (!Array.isArray(changes)) return null
  const spelled = changes.filter((c) => c.op === 'keep' || c.op === 'insert').map((c) => c.text).join('')
  if (spelled !== newText) return null
  const nodes = []
  const authors = new Map()
  for (const change of changes) {
    if (!change.text) continue
    if (change.op === 'keep') {
      nodes.push(document.createTextNode(change.text))
      continue
    }
    const name = change.author ? actorName(change.author) : null
    const { color, colorLight } = colorFor(name || 'unknown')
    if (name) {
      const entry = authors.get(name) || { name, color, inserted: 0, deleted: 0 }
      entry[change.op === 'insert' ? 'inserted' : 'deleted'] += change.text.length
      authors.set(name, entry)
    }
    const style = { '--author': color, '--author-light': colorLight }
    const inserted = change.op === 'insert'
    nodes.push(h(inserted ? 'ins' : 'del', {
      class: `chg ${inserted ? 'chg-ins' : 'chg-del'}`,
      style,
      title: name ? `${inserted ? 'Added' : 'Removed'} by ${name}` : (inserted ? 'Added' : 'Removed'),
      text: change.text
    }))
  }
  return { nodes, authors: Array.from(authors.values()) }
}

/** Next/previous change: one stop per run of adjacent marks. */
export class ChangeNavigator {
  constructor (view) {
    this.view = view
    this.stops = []
    this.index = -1
    this.prev = h('button', {
      type: 'button',
      class: 'button button-small',
      text: '↑ Previous',
      attrs: { 'data-testid': 'prev-change', 'aria-label': 'Previous change' },
      on: { click: () => this.go(-1) }
    })
    this.next = h('button', {
      type: 'button',
      class: 'button button-small',
      text: 'Next ↓',
      attrs: { 'data-testid': 'next-change', 'aria-label': 'Next change' },
      on: { click: () => this.go(1) }
    })
    this.counter = h('span', { class: 'muted small change-counter', attrs: { 'aria-live': 'polite', 'data-testid': 'change-counter' } })
    this.el = h('div', { class: 'change-nav', attrs: { role: 'group', 'aria-label': 'Changes' } }, [this.prev, this.counter, this.next])
    this.reset()
  }

  reset () {
    this.stops = []
    for (const mark of this.view.querySelectorAll('.chg')) {
      const previous = mark.previousSibling
      if (previous && previous.classList && previous.classList.contains('chg') && this.stops.length) continue
      this.stops.push(mark)
    }
    this.index = -1
    this._describe()
  }

  go (step) {
    if (!this.stops.length) return
    if (this.index >= 0) this.stops[this.index].classList.remove('chg-current')
    this.index = (this.index + step + this.stops.length) % this.stops.length
    const mark = this.stops[this.index]
    mark.classList.add('chg-current')
    mark.scrollIntoView({ block: 'center', behavior: 'smooth' })
    this._describe()
  }

  _describe () {
    const n = this.stops.length
    this.prev.disabled = this.next.disabled = n === 0
    this.counter.textContent = n === 0
      ? 'No changes'
      : this.index < 0 ? `${n} change${n === 1 ? '' : 's'}` : `Change ${this.index + 1} of ${n}`
  }
}

export const renderLegend = (legend, authors, emptyText) => {
  if (authors.length === 0) {
    replaceChildren(legend, h('span', { class: 'muted small', text: emptyText }))
    return
  }
  replaceChildren(legend, ...authors.map((a) => h('span', {
    class: 'legend-item',
    title: `${a.name}: ${a.inserted} characters added, ${a.deleted} removed`
  }, [
    h('span', { class: 'legend-swatch', style: { 'background-color': a.color }, attrs: { 'aria-hidden': 'true' } }),
    `${a.name} `,
    h('span', { class: 'count-ins', text: `+${a.inserted}` }),
    ' ',
    h('span', { class: 'count-del', text: `−${a.deleted}` })
  ])))
}
