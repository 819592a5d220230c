// Other people's cursors and selections in the editor, from Yjs awareness,
// and this person's own cursor published to them.
//
// This replaces y-codemirror.next's yRemoteSelections, which interpolates the
// `color` a remote client announces into style attributes: a hostile client
// could announce `red;background:url(...);position:fixed;inset:0` and cover
// the page with an image from anywhere. Here every remote value goes through
// presence.remoteUser (a `#rrggbb` colour, a bounded plain name) and reaches
// the DOM only as textContent or single CSSOM properties, never as markup or
// a style attribute (which the Content-Security-Policy forbids anyway).
//
// Selections and carets are drawn in two CodeMirror layers (like the local
// selection), so nothing is inserted into the text itself.

import { Annotation, EditorSelection } from '@codemirror/state'
import { RectangleMarker, ViewPlugin, layer } from '@codemirror/view'
import * as Y from 'yjs'
import { remoteUser } from './presence.js'

/** Marks the transactions that only say "awareness changed: redraw". */
const awarenessChanged = Annotation.define()

/**
 * The remote ranges to draw: `[{clientId, name, color, colorLight, anchor, head}]`,
 * positions clamped to the editor's document. Malformed cursors are skipped.
 */
const remoteRanges = (view, ytext, awareness) => {
  const ydoc = ytext.doc
  const length = view.state.doc.length
  // A position naming a root type this document lacks would make ydoc.get() create it.
  const known = (pos) => pos && typeof pos === 'object' &&
    (pos.tname == null || (typeof pos.tname === 'string' && ydoc.share.has(pos.tname)))
  const ranges = []
  awareness.getStates().forEach((state, clientId) => {
    if (clientId === awareness.clientID || !state || typeof state !== 'object') return
    const cursor = state.cursor
    if (!cursor || typeof cursor !== 'object' || !known(cursor.anchor) || !known(cursor.head)) return
    let anchor, head
    try {
      anchor = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(cursor.anchor), ydoc)
      head = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(cursor.head), ydoc)
    } catch {
      return
    }
    if (!anchor || !head || anchor.type !== ytext || head.type !== ytext) return
    const clamp = (index) => Math.max(0, Math.min(length, index | 0))
    ranges.push({ clientId, ...remoteUser(state.user, clientId), anchor: clamp(anchor.index), head: clamp(head.index) })
  })
  return ranges
}

/** One rectangle of a remote selection, tinted with the person's (validated) colour. */
class TintMarker {
  constructor (rect, color) {
    this.rect = rect
    this.color = color
  }

  draw () {
    const el = this.rect.draw()
    el.style.backgroundColor = this.color
    return el
  }

  update (el, prev) {
    if (!(prev instanceof TintMarker) || !this.rect.update(el, prev.rect)) return false
    el.style.backgroundColor = this.color
    return true
  }

  eq (other) {
    return other instanceof TintMarker && other.color === this.color && this.rect.eq(other.rect)
  }
}

/** A remote caret with the person's name above it. */
class CaretMarker {
  constructor (rect, color, name) {
    this.rect = rect
    this.color = color
    this.name = name
  }

  draw () {
    const el = this.rect.draw()
    const info = document.createElement('div')
    info.className = 'cm-ySelectionInfo'
    el.append(info)
    this.paint(el)
    return el
  }

  update (el, prev) {
    if (!(prev instanceof CaretMarker) || !this.rect.update(el, prev.rect)) return false
    this.paint(el)
    return true
  }

  paint (el) {
    el.style.borderLeftColor = this.color
    const info = el.firstChild
    info.style.backgroundColor = this.color
    info.textContent = this.name
  }

  eq (other) {
    return other instanceof CaretMarker && other.color === this.color && other.name === this.name &&
      this.rect.eq(other.rect)
  }
}

const redrawOn = (update) =>
  update.docChanged || update.viewportChanged ||
    update.transactions.some((tr) => tr.annotation(awarenessChanged))

/**
 * The extension: publishes the local selection as the awareness `cursor`
 * field (relative positions, as y-codemirror.next does, so stock clients
 * understand it) and draws everyone else's.
 *
 * @param {import('yjs').Text} ytext
 * @param {import('y-protocols/awareness').Awareness} awareness
 */
export const remoteCursors = (ytext, awareness) => {
  const publisher = ViewPlugin.fromClass(class {
    constructor (view) {
      this.onChange = ({ added, updated, removed }) => {
        const others = added.concat(updated, removed).some((id) => id !== awareness.clientID)
        if (others) view.dispatch({ annotations: awarenessChanged.of(true) })
      }
      awareness.on('change', this.onChange)
    }

    update (update) {
      const local = awareness.getLocalState()
      if (local == null) return
      const hasFocus = update.view.hasFocus && update.view.dom.ownerDocument.hasFocus()
      if (hasFocus) {
        const sel = update.state.selection.main
        const anchor = Y.createRelativePositionFromTypeIndex(ytext, sel.anchor)
        const head = Y.createRelativePositionFromTypeIndex(ytext, sel.head)
        const current = local.cursor
        const same = current != null &&
          Y.compareRelativePositions(Y.createRelativePositionFromJSON(current.anchor), anchor) &&
          Y.compareRelativePositions(Y.createRelativePositionFromJSON(current.head), head)
        if (!same) awareness.setLocalStateField('cursor', { anchor, head })
      }
    }

    destroy () {
      awareness.off('change', this.onChange)
    }
  })

  const selections = layer({
    above: false,
    class: 'cm-yRemoteSelectionLayer',
    update: redrawOn,
    markers (view) {
      const markers = []
      for (const r of remoteRanges(view, ytext, awareness)) {
        if (r.anchor === r.head) continue
        const range = EditorSelection.range(r.anchor, r.head)
        for (const rect of RectangleMarker.forRange(view, 'cm-ySelection', range)) {
          markers.push(new TintMarker(rect, r.colorLight))
        }
      }
      return markers
    }
  })

  const carets = layer({
    above: true,
    class: 'cm-yRemoteCaretLayer',
    update: redrawOn,
    markers (view) {
      const markers = []
      for (const r of remoteRanges(view, ytext, awareness)) {
        // The caret sits outside the selection, on the side it moved to.
        const range = EditorSelection.cursor(r.head, r.head > r.anchor ? -1 : 1)
        for (const rect of RectangleMarker.forRange(view, 'cm-ySelectionCaret', range)) {
          markers.push(new CaretMarker(rect, r.color, r.name))
        }
      }
      return markers
    }
  })

  return [publisher, selections, carets]
}
