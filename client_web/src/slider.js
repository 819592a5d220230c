// The time slider of the history panel: it moves by revision (default), by
// single change, or between named versions; marks named versions and
// restores on its track; says when and who, never internal numbers; plays
// history back at a chosen speed. It only reports positions: the panel
// decides what to fetch (debounced while dragging, stale fetches cancelled).

import { h, replaceChildren } from './dom.js'
import { actorName } from './presence.js'

export const MODES = [
  ['revision', 'Revisions'],
  ['event', 'Every change'],
  ['named', 'Named']
]
const SPEEDS = [1, 2, 4, 8]

/** "10:32" today, "28 Nov, 10:32" before. */
export const shortTime = (iso) => {
  if (!iso) return ''
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return ''
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
  const today = new Date().toDateString() === date.toDateString()
  return today ? time : `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })}, ${time}`
}

export const namesOf = (revision) => (revision && revision.authors ? revision.authors.map(actorName) : [])

/**
 * @param {{onMove: (seq: number, stop: object|null) => void,
 *   onSettle: (seq: number, stop: object|null) => void}} handlers
 *   `onMove` while dragging or playing, `onSettle` when it comes to rest.
 */
export class TimeSlider {
  constructor ({ onMove, onSettle }) {
    this.onMove = onMove
    this.onSettle = onSettle
    this.mode = 'revision'
    this.revisions = [] // oldest first
    this.versions = []
    this.head = 0
    this.timer = null
    this._build()
  }

  _build () {
    this.modeButtons = MODES.map(([mode, label]) => h('button', {
      type: 'button',
      class: 'segment',
      text: label,
      dataset: { mode },
      attrs: { 'aria-pressed': String(mode === this.mode), 'data-testid': `slider-mode-${mode}` },
      on: { click: () => this.setMode(mode) }
    }))
    this.input = h('input', {
      type: 'range',
      class: 'slider',
      id: 'history-slider',
      min: '0',
      max: '0',
      step: '1',
      value: '0',
      disabled: true,
      attrs: { 'data-testid': 'history-slider', 'aria-describedby': 'history-slider-label' }
    })
    this.marks = h('div', { class: 'slider-marks', attrs: { 'data-testid': 'slider-marks' } })
    this.label = h('output', { class: 'slider-label', id: 'history-slider-label', htmlFor: 'history-slider', attrs: { 'data-testid': 'slider-label' } })
    this.playButton = h('button', {
      type: 'button',
      class: 'button button-small',
      text: '▶ Play',
      attrs: { 'data-testid': 'play-button', 'aria-label': 'Play history back' },
      on: { click: () => (this.timer ? this.pause() : this.play()) }
    })
    this.speed = h('select', {
      class: 'input input-small',
      attrs: { 'aria-label': 'Playback speed', 'data-testid': 'play-speed' }
    }, SPEEDS.map((s) => h('option', { value: String(s), text: `${s}×` })))
    this.input.addEventListener('input', () => {
      this.pause()
      this._moved(false)
    })
    this.input.addEventListener('change', () => this._moved(true))
    this.el = h('section', { class: 'panel-section scrub', attrs: { 'aria-label': 'Time slider' } }, [
      h('div', { class: 'segmented segmented-small', attrs: { role: 'group', 'aria-label': 'Move by' } }, this.modeButtons),
      h('div', { class: 'slider-track' }, [this.input, this.marks]),
      this.label,
      h('div', { class: 'button-row play-row' }, [this.playButton, this.speed])
    ])
  }

  /** Stops, oldest first: {seq, time, revision?, version?}. */
  stops () {
    if (this.mode === 'named') {
      return [...this.versions].sort((a, b) => a.seq - b.seq)
        .map((v) => ({ seq: v.seq, time: v.created_at, version: v, revision: this._revisionAt(v.seq) }))
    }
    return this.revisions.map((r) => ({ seq: r.to_seq, time: r.ended_at, revision: r }))
  }

  _revisionAt (seq) {
    return this.revisions.find((r) => r.from_seq <= seq && seq <= r.to_seq) ||
      [...this.revisions].reverse().find((r) => r.to_seq <= seq) || null
  }

  update ({ revisions, versions, head }) {
    if (revisions) this.revisions = [...revisions].sort((a, b) => a.to_seq - b.to_seq)
    if (versions) this.versions = versions
    if (head !== undefined) this.head = Math.max(this.head, head)
    const following = Number(this.input.value) >= Number(this.input.max)
    const seq = this.seq()
    this._range()
    if (following && !this.timer) this.input.value = this.input.max
    else if (seq) this.moveTo(seq, { quiet: true })
    this._renderMarks()
    this._describe()
  }

  _range () {
    if (this.mode === 'event') {
      this.input.min = '1'
      this.input.max = String(Math.max(1, this.head))
    } else {
      this.input.min = '0'
      this.input.max = String(Math.max(0, this.stops().length - 1))
    }
    this.input.disabled = this.mode === 'event' ? this.head === 0 : this.stops().length === 0
  }

  setMode (mode) {
    const seq = this.seq()
    this.mode = mode
    for (const b of this.modeButtons) b.setAttribute('aria-pressed', String(b.dataset.mode === mode))
    this._range()
    if (seq) this.moveTo(seq, { quiet: true })
    this._renderMarks()
    this._describe()
  }

  /** The seq the slider stands at. */
  seq () {
    const value = Number(this.input.value)
    if (this.mode === 'event') return value
    const stop = this.stops()[value]
    return stop ? stop.seq : 0
  }

  stop () {
    if (this.mode === 'event') return { seq: this.seq(), revision: this._revisionAt(this.seq()) }
    return this.stops()[Number(this.input.value)] || null
  }

  /** Puts the thumb at `seq` (the nearest stop at or after it). */
  moveTo (seq, { quiet = false } = {}) {
    if (this.mode === 'event') {
      this.input.value = String(seq)
    } else {
      const stops = this.stops()
      let index = stops.findIndex((s) => s.seq >= seq)
      if (index < 0) index = stops.length - 1
      this.input.value = String(Math.max(0, index))
    }
    this._describe()
    if (!quiet) this._moved(true)
  }

  _moved (settled) {
    this._describe()
    const seq = this.seq()
    if (!seq) return
    if (settled) this.onSettle(seq, this.stop())
    else this.onMove(seq, this.stop())
  }

  _describe () {
    const stop = this.stop()
    let text
    if (!stop || !stop.seq) {
      text = 'No changes yet'
    } else {
      const revision = stop.revision
      const names = namesOf(revision).join(', ')
      const when = shortTime(stop.time || (revision && revision.ended_at))
      // The last revision is now even when named versions or renames came after it.
      const last = this.mode === 'revision' && Number(this.input.value) >= Number(this.input.max)
      const now = stop.seq >= this.head || last ? ' (now)' : ''
      if (stop.version) text = `“${stop.version.name}” · ${when}${now}`
      else if (revision && revision.kind === 'restore') text = `${when} · restore by ${names}${now}`
      else text = [when, names].filter(Boolean).join(' · ') + now
      if (this.mode === 'event' && revision) text = `${shortTime(revision.started_at)}–${shortTime(revision.ended_at)} · ${names}${now}`
    }
    this.label.textContent = text
    this.input.setAttribute('aria-valuetext', text)
  }

  _fraction (seq) {
    if (this.mode === 'event') return this.head > 1 ? (seq - 1) / (this.head - 1) : 0
    const stops = this.stops()
    if (stops.length < 2) return 0
    let index = stops.findIndex((s) => s.seq >= seq)
    if (index < 0) index = stops.length - 1
    return index / (stops.length - 1)
  }

  _renderMarks () {
    const marks = []
    for (const version of this.versions) {
      marks.push(h('button', {
        type: 'button',
        class: 'slider-mark mark-version',
        text: '◆',
        title: `Named version “${version.name}”`,
        style: { left: `${this._fraction(version.seq) * 100}%` },
        attrs: { 'data-testid': 'mark-version', 'aria-label': `Go to named version ${version.name}` },
        on: { click: () => this.moveTo(version.seq) }
      }))
    }
    for (const revision of this.revisions) {
      if (revision.kind !== 'restore') continue
      marks.push(h('button', {
        type: 'button',
        class: 'slider-mark mark-restore',
        text: '↺',
        title: `Restored by ${namesOf(revision).join(', ')} at ${shortTime(revision.ended_at)}`,
        style: { left: `${this._fraction(revision.to_seq) * 100}%` },
        attrs: { 'data-testid': 'mark-restore', 'aria-label': `Go to the restore at ${shortTime(revision.ended_at)}` },
        on: { click: () => this.moveTo(revision.to_seq) }
      }))
    }
    replaceChildren(this.marks, ...marks)
  }

  play () {
    if (this.input.disabled) return
    if (Number(this.input.value) >= Number(this.input.max)) this.input.value = this.input.min
    this.playButton.textContent = '❚❚ Pause'
    this.playButton.setAttribute('aria-label', 'Pause playback')
    const tick = () => {
      const step = this.mode === 'event' ? Math.max(1, Math.round(this.head / 60)) : 1
      const next = Math.min(Number(this.input.max), Number(this.input.value) + step)
      this.input.value = String(next)
      if (next >= Number(this.input.max)) {
        this.pause()
        this._moved(true)
        return
      }
      this._moved(false)
      this.timer = setTimeout(tick, 1000 / Number(this.speed.value))
    }
    this._moved(false)
    this.timer = setTimeout(tick, 1000 / Number(this.speed.value))
  }

  pause () {
    if (!this.timer) return
    clearTimeout(this.timer)
    this.timer = null
    this.playButton.textContent = '▶ Play'
    this.playButton.setAttribute('aria-label', 'Play history back')
  }
}
