// The history panel: revisions and named versions, a slider over every event
// seq, a read-only view of the text at a seq with what changed since
// highlighted by author, restore (behind a confirmation) and naming a version.
//
// Restore is a command on the server; its effect reaches this editor (and
// every other) as an ordinary update over the WebSocket, so nothing here
// touches the Y.Doc.

import { h, replaceChildren, notify, notifyError, timeEl, absoluteTime, debounce } from './dom.js'
import { actorName, avatar, colorFor } from './presence.js'
import { answerSeq } from './api.js'

const PAGE = 50

/**
 * Builds the spans of the history view: the text at `from`, with text that
 * was deleted since marked in place and text inserted since shown as markers.
 * Inserted text is drawn by CSS from `data-text`, so the element's text
 * content stays exactly the old text (what was there at that moment).
 *
 * Returns the authors of the changes, or null when `changes` does not
 * describe `oldText` (then the caller shows the plain text).
 *
 * @param {string} oldText
 * @param {Array<{op: string, text: string, author?: any}>} changes
 */
export const diffNodes = (oldText, changes) => {
  if (!Array.isArray(changes)) return null
  const old = changes.filter((c) => c.op === 'keep' || c.op === 'delete').map((c) => c.text).join('')
  if (old !== oldText) return null
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
    if (change.op === 'delete') {
      nodes.push(h('del', {
        class: 'chg chg-del',
        style,
        title: name ? `Removed later by ${name}` : 'Removed later',
        text: change.text
      }))
    } else if (change.op === 'insert') {
      nodes.push(h('ins', {
        class: 'chg chg-ins',
        style,
        title: name ? `Added later by ${name}` : 'Added later',
        dataset: { text: change.text }
      }))
    }
  }
  return { nodes, authors: Array.from(authors.values()) }
}

/**
 * The history panel (an aside) and the stage that shows an old text in
 * place of the editor. Callbacks: `onEnterView()` when an old text is shown,
 * `onExitView()` when back to the live editor.
 */
export class HistoryPanel {
  /**
   * @param {{api: import('./api.js').Api, docId: string,
   *   sync: import('./sync.js').DocumentSync,
   *   onEnterView: () => void, onExitView: () => void,
   *   onTitle?: (title: string) => void, canEdit?: boolean}} deps
   */
  constructor ({ api, docId, sync, onEnterView, onExitView, onTitle, canEdit = true }) {
    this.api = api
    /** Restoring and naming versions are write commands (server/read/api.py requires write). */
    this.canEdit = canEdit
    this.docId = docId
    this.sync = sync
    this.onEnterView = onEnterView
    this.onExitView = onExitView
    this.onTitle = onTitle || (() => {})
    this.head = 0
    this.selected = null
    this.isOpen = false
    this.revisionsNext = null
    this.viewAbort = null
    this.revisions = []
    this.versions = []

    this._buildPanel()
    this._buildStage()
    this._buildDialog()

    this._refreshSoon = debounce(() => this.refresh(), 1200)
    this._loadSoon = debounce((seq) => this.select(seq), 180)
    sync.on('head', (seq) => {
      this._setHead(seq)
      if (this.isOpen) this._refreshSoon()
    })
    sync.doc.on('update', () => {
      if (this.isOpen) this._refreshSoon()
    })
  }

  _buildPanel () {
    this.closeButton = h('button', {
      type: 'button',
      class: 'icon-button',
      text: '×',
      attrs: { 'aria-label': 'Close history' },
      on: { click: () => this.close() }
    })

    this.slider = h('input', {
      type: 'range',
      class: 'slider',
      id: 'history-slider',
      min: '1',
      max: '1',
      step: '1',
      value: '1',
      disabled: true,
      attrs: { 'data-testid': 'history-slider', 'aria-describedby': 'history-slider-label' }
    })
    this.sliderLabel = h('output', { class: 'slider-label', id: 'history-slider-label', htmlFor: 'history-slider' })
    this.slider.addEventListener('input', () => {
      const seq = Number(this.slider.value)
      this._describeSlider(seq)
      this._loadSoon(seq)
    })

    this.selectionTitle = h('p', { class: 'selection-title', attrs: { 'aria-live': 'polite' } })
    this.restoreButton = h('button', {
      type: 'button',
      class: 'button button-primary',
      text: 'Restore this version',
      disabled: true,
      attrs: { 'data-testid': 'restore-button' },
      on: { click: () => this._askRestore() }
    })
    this.versionName = h('input', {
      type: 'text',
      class: 'input',
      id: 'name-version-input',
      placeholder: 'e.g. First draft',
      maxLength: 120,
      autocomplete: 'off',
      attrs: { 'data-testid': 'name-version-input' }
    })
    this.versionButton = h('button', {
      type: 'submit',
      class: 'button',
      text: 'Save name',
      disabled: !this.canEdit,
      attrs: { 'data-testid': 'name-version-button' }
    })
    this.versionName.disabled = !this.canEdit
    this.versionLabel = h('label', { htmlFor: 'name-version-input', class: 'field-label', text: 'Name the current version' })
    const versionForm = h('form', { class: 'name-version' }, [
      this.versionLabel,
      h('div', { class: 'inline-form' }, [this.versionName, this.versionButton]),
      this.canEdit ? null : h('p', { class: 'muted small', text: 'Only people who may edit this document can restore or name versions.' })
    ])
    versionForm.addEventListener('submit', (event) => {
      event.preventDefault()
      this._nameVersion()
    })

    this.versionList = h('ul', { class: 'history-list', attrs: { 'aria-label': 'Named versions' } })
    this.versionEmpty = h('p', { class: 'muted small', text: 'No named versions yet.' })
    this.revisionList = h('ul', { class: 'history-list', attrs: { 'aria-label': 'Revisions' } })
    this.revisionStatus = h('p', { class: 'muted small', attrs: { 'aria-live': 'polite' } })
    this.moreButton = h('button', {
      type: 'button',
      class: 'button button-quiet button-small',
      text: 'Show older revisions',
      hidden: true,
      on: { click: () => this._loadMoreRevisions() }
    })

    this.panel = h('aside', {
      id: 'history-panel',
      class: 'history-panel',
      hidden: true,
      attrs: { 'aria-label': 'History', 'data-testid': 'history-panel' }
    }, [
      h('div', { class: 'panel-head' }, [
        h('h2', { class: 'panel-title', text: 'History' }),
        this.closeButton
      ]),
      h('div', { class: 'panel-body' }, [
        h('section', { class: 'panel-section scrub', attrs: { 'aria-label': 'Go to any change' } }, [
          h('label', { htmlFor: 'history-slider', class: 'field-label', text: 'Every change, oldest to newest' }),
          this.slider,
          this.sliderLabel
        ]),
        h('section', { class: 'panel-section selection', attrs: { 'aria-label': 'Selected version' } }, [
          this.selectionTitle,
          h('div', { class: 'button-row' }, [this.restoreButton]),
          versionForm
        ]),
        h('section', { class: 'panel-section' }, [
          h('h3', { class: 'section-title', text: 'Named versions' }),
          this.versionList,
          this.versionEmpty
        ]),
        h('section', { class: 'panel-section' }, [
          h('h3', { class: 'section-title', text: 'Revisions' }),
          this.revisionList,
          this.revisionStatus,
          this.moreButton
        ])
      ])
    ])
    this.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation()
        if (this.selected !== null) this.exitView()
        else this.close()
      }
    })
    this._describeSelection()
  }

  _buildStage () {
    this.stageTitle = h('p', { class: 'stage-title' })
    this.stageWhen = h('span', { class: 'stage-when' })
    this.legend = h('div', { class: 'legend', attrs: { 'aria-label': 'Changes since then, by author' } })
    this.highlightToggle = h('input', { type: 'checkbox', checked: true, id: 'highlight-changes' })
    this.highlightToggle.addEventListener('change', () => {
      this.view.classList.toggle('hide-changes', !this.highlightToggle.checked)
    })
    this.view = h('div', {
      class: 'history-view',
      tabIndex: 0,
      attrs: {
        'data-testid': 'history-view',
        role: 'document',
        'aria-label': 'The document as it was (read-only)'
      }
    })
    this.stage = h('section', { class: 'history-stage', hidden: true, attrs: { 'aria-label': 'Earlier version' } }, [
      h('div', { class: 'stage-banner' }, [
        h('div', { class: 'stage-banner-text' }, [
          this.stageTitle,
          h('p', { class: 'muted small' }, [
            this.stageWhen,
            h('span', { class: 'stage-note', text: 'Read-only. Restoring makes a new change; nothing is lost.' })
          ])
        ]),
        h('button', {
          type: 'button',
          class: 'button button-quiet',
          text: 'Back to editing',
          on: { click: () => this.exitView() }
        })
      ]),
      h('div', { class: 'stage-tools' }, [
        h('label', { class: 'check', htmlFor: 'highlight-changes' }, [this.highlightToggle, ' Highlight what changed since']),
        this.legend
      ]),
      h('div', { class: 'history-scroll' }, [this.view])
    ])
    this.stage.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.exitView()
    })
  }

  _buildDialog () {
    this.dialogText = h('p', { id: 'restore-dialog-text' })
    this.confirmButton = h('button', {
      type: 'button',
      class: 'button button-primary',
      text: 'Restore',
      attrs: { 'data-testid': 'confirm-restore' },
      on: { click: () => this._restore() }
    })
    this.dialog = h('dialog', {
      class: 'dialog',
      attrs: { 'aria-labelledby': 'restore-dialog-title', 'aria-describedby': 'restore-dialog-text' }
    }, [
      h('h2', { id: 'restore-dialog-title', class: 'dialog-title', text: 'Restore this version?' }),
      this.dialogText,
      h('div', { class: 'button-row button-row-end' }, [
        h('button', {
          type: 'button',
          class: 'button button-quiet',
          text: 'Cancel',
          attrs: { 'data-testid': 'cancel-restore' },
          on: { click: () => this.dialog.close() }
        }),
        this.confirmButton
      ])
    ])
    document.body.append(this.dialog)
  }

  open () {
    if (this.isOpen) return
    this.isOpen = true
    this.panel.hidden = false
    this.panel.classList.add('is-open')
    this.refresh()
    this.closeButton.focus({ preventScroll: true })
    this._emitToggle()
  }

  close () {
    if (!this.isOpen) return
    this.isOpen = false
    this.panel.hidden = true
    this.panel.classList.remove('is-open')
    this._refreshSoon.cancel()
    this.exitView()
    this._emitToggle()
  }

  toggle () {
    if (this.isOpen) this.close()
    else this.open()
  }

  /** Called with the new open state; set by the page to sync its toggle button. */
  onToggle (fn) {
    this._toggleListener = fn
  }

  _emitToggle () {
    if (this._toggleListener) this._toggleListener(this.isOpen)
  }

  destroy () {
    this._refreshSoon.cancel()
    this._loadSoon.cancel()
    if (this.viewAbort) this.viewAbort.abort()
    this.dialog.remove()
  }

  _setHead (seq) {
    if (!(seq > this.head)) return
    const following = this.selected === null || Number(this.slider.value) === this.head
    this.head = seq
    this.slider.max = String(seq)
    this.slider.disabled = false
    if (this.selected === null && following) this.slider.value = String(seq)
    this._describeSlider(Number(this.slider.value))
    this._describeSelection()
  }

  /**
   * Reloads the head seq, revisions and versions, at least as new as
   * `minSeq` (default: the last seq the server acknowledged to us, so our own
   * edits are in). If the read side is too far behind, shows what it has.
   */
  async refresh ({ minSeq = this.sync.headSeq || undefined } = {}) {
    const load = (seq) => Promise.allSettled([
      this.api.getDocument(this.docId, { minSeq: seq }),
      this.api.listRevisions(this.docId, { limit: PAGE, minSeq: seq }),
      this.api.listVersions(this.docId, { minSeq: seq })
    ])
    let results = await load(minSeq)
    if (minSeq && results.some((r) => r.status === 'rejected' && r.reason && r.reason.code === 'read_side_behind')) {
      results = await load(undefined)
    }
    const [info, revisions, versions] = results
    if (info.status === 'fulfilled' && info.value) {
      this._setHead(info.value.seq || 0)
      if (info.value.title) this.onTitle(info.value.title)
    }
    if (revisions.status === 'fulfilled') {
      const items = revisions.value.items || []
      this.revisions = items
      this.revisionsNext = revisions.value.next || null
      for (const item of items) this._setHead(item.to_seq || 0)
      this._renderRevisions()
    } else {
      this.revisionStatus.textContent = `Could not load revisions: ${revisions.reason.message}`
    }
    if (versions.status === 'fulfilled') {
      this.versions = versions.value.items || []
      this._renderVersions()
    } else {
      this.versionEmpty.hidden = false
      this.versionEmpty.textContent = `Could not load named versions: ${versions.reason.message}`
    }
    if (this.head === 0) {
      this.slider.disabled = true
      this._describeSlider(0)
    }
  }

  async _loadMoreRevisions () {
    if (!this.revisionsNext) return
    this.moreButton.disabled = true
    try {
      const page = await this.api.listRevisions(this.docId, { limit: PAGE, cursor: this.revisionsNext })
      this.revisions = this.revisions.concat(page.items || [])
      this.revisionsNext = page.next || null
      this._renderRevisions()
    } catch (err) {
      notifyError('Could not load older revisions', err)
    } finally {
      this.moreButton.disabled = false
    }
  }

  _renderRevisions () {
    replaceChildren(this.revisionList, ...this.revisions.map((rev) => this._revisionItem(rev)))
    this.revisionStatus.textContent = this.revisions.length ? '' : 'No changes yet.'
    this.moreButton.hidden = !this.revisionsNext
    this._markCurrent()
  }

  _revisionItem (rev) {
    const names = (rev.authors || []).map(actorName)
    const range = rev.from_seq === rev.to_seq ? `change ${rev.to_seq}` : `changes ${rev.from_seq}–${rev.to_seq}`
    const counts = h('span', { class: 'counts' }, [
      h('span', { class: 'count-ins', text: `+${rev.inserted ?? 0}` }),
      h('span', { class: 'count-del', text: `−${rev.deleted ?? 0}` })
    ])
    const button = h('button', {
      type: 'button',
      class: 'history-item',
      dataset: { seq: String(rev.to_seq) },
      title: `${absoluteTime(rev.ended_at)}: ${rev.inserted ?? 0} characters added, ${rev.deleted ?? 0} removed`,
      attrs: { 'data-testid': 'revision-item' },
      on: { click: () => this.select(rev.to_seq) }
    }, [
      h('span', { class: 'avatar-stack' }, names.slice(0, 3).map((name) => avatar(name, { size: 'sm' }))),
      h('span', { class: 'history-item-main' }, [
        h('span', { class: 'history-item-title' }, names.length
          ? names.flatMap((name, i) => [i ? ', ' : null, h('span', { class: 'author', style: { color: colorFor(name).color }, text: name })]).filter(Boolean)
          : ['Unknown author']),
        h('span', { class: 'history-item-meta' }, [timeEl(rev.ended_at || rev.started_at), ` · ${range}`])
      ]),
      counts
    ])
    return h('li', {}, [button])
  }

  _renderVersions () {
    const items = [...this.versions].sort((a, b) => b.seq - a.seq)
    replaceChildren(this.versionList, ...items.map((version) => {
      const who = version.actor ? actorName(version.actor) : null
      return h('li', {}, [h('button', {
        type: 'button',
        class: 'history-item history-item-version',
        dataset: { seq: String(version.seq) },
        attrs: { 'data-testid': 'version-item' },
        on: { click: () => this.select(version.seq) }
      }, [
        h('span', { class: 'version-mark', attrs: { 'aria-hidden': 'true' } }, ['◆']),
        h('span', { class: 'history-item-main' }, [
          h('span', { class: 'history-item-title', text: version.name }),
          h('span', { class: 'history-item-meta' }, [
            `change ${version.seq}`,
            who ? ` · ${who}` : '',
            version.created_at ? ' · ' : '',
            version.created_at ? timeEl(version.created_at) : ''
          ])
        ])
      ])])
    }))
    this.versionEmpty.hidden = items.length > 0
    this.versionEmpty.textContent = 'No named versions yet.'
    this._markCurrent()
  }

  _markCurrent () {
    for (const button of this.panel.querySelectorAll('.history-item')) {
      const current = this.selected !== null && Number(button.dataset.seq) === this.selected
      if (current) button.setAttribute('aria-current', 'true')
      else button.removeAttribute('aria-current')
    }
  }

  _describeSlider (seq) {
    const text = this.head === 0
      ? 'No changes yet'
      : seq >= this.head ? `Change ${seq} of ${this.head} (now)` : `Change ${seq} of ${this.head}`
    this.sliderLabel.textContent = text
    this.slider.setAttribute('aria-valuetext', text)
  }

  _describeSelection (at) {
    if (this.selected === null) {
      this.selectionTitle.textContent = this.head ? `Now: change ${this.head}` : 'Now'
      this.versionLabel.textContent = 'Name the current version'
      this.restoreButton.disabled = true
      return
    }
    const when = at && at.updated_at ? ` · ${absoluteTime(at.updated_at)}` : ''
    this.selectionTitle.textContent = `Viewing change ${this.selected}${when}`
    this.versionLabel.textContent = 'Name this version'
    this.restoreButton.disabled = !this.canEdit || !(this.selected < this.head)
  }

  /** Shows the text at `seq` in place of the editor. */
  async select (seq) {
    seq = Math.max(1, Math.round(Number(seq)))
    if (!Number.isFinite(seq)) return
    if (!this.isOpen) this.open()
    this.selected = seq
    this.slider.value = String(seq)
    this._describeSlider(seq)
    this._describeSelection()
    this._markCurrent()
    const entering = this.stage.hidden
    this.stage.hidden = false
    this.stage.classList.add('is-loading')
    this.stageTitle.textContent = `As it was at change ${seq}`
    this.stageWhen.textContent = ''
    if (entering) this.onEnterView()

    if (this.viewAbort) this.viewAbort.abort()
    const abort = new AbortController()
    this.viewAbort = abort
    // "Changes since" are against the newest text the read side has; others'
    // edits reach us without a seq, so ask for it alongside the old text.
    const [at, now] = await Promise.allSettled([
      this.api.getDocument(this.docId, { at: seq, signal: abort.signal }),
      this.api.getDocument(this.docId, { minSeq: this.sync.headSeq || undefined, signal: abort.signal })
    ])
    if (abort.signal.aborted || this.selected !== seq) return
    if (now.status === 'fulfilled' && now.value) this._setHead(now.value.seq || 0)
    const head = this.head
    const [diff] = await Promise.allSettled([
      head > seq ? this.api.diff(this.docId, seq, head, { signal: abort.signal }) : Promise.resolve(null)
    ])
    if (abort.signal.aborted || this.selected !== seq) return
    this.stage.classList.remove('is-loading')
    if (at.status === 'rejected') {
      replaceChildren(this.view, h('p', { class: 'stage-error', text: `Could not load this version: ${at.reason.message}` }))
      replaceChildren(this.legend)
      return
    }
    const text = at.value.text ?? ''
    this.stageWhen.textContent = at.value.updated_at ? absoluteTime(at.value.updated_at) : ''
    this._describeSelection(at.value)
    const rendered = diff.status === 'fulfilled' && diff.value ? diffNodes(text, diff.value.changes) : null
    if (rendered) {
      replaceChildren(this.view, ...rendered.nodes)
      this._renderLegend(rendered.authors, head)
    } else {
      this.view.textContent = text
      replaceChildren(this.legend, head > seq
        ? h('span', { class: 'muted small', text: diff.status === 'rejected' ? 'Changes since then are not available.' : '' })
        : h('span', { class: 'muted small', text: 'This is the current text.' }))
    }
    if (!text) this.view.classList.add('is-empty')
    else this.view.classList.remove('is-empty')
  }

  _renderLegend (authors, head) {
    if (authors.length === 0) {
      replaceChildren(this.legend, h('span', { class: 'muted small', text: `No changes between then and now (change ${head}).` }))
      return
    }
    replaceChildren(this.legend, ...authors.map((a) => h('span', {
      class: 'legend-item',
      title: `${a.name}: ${a.inserted} characters added, ${a.deleted} removed since`
    }, [
      h('span', { class: 'legend-swatch', style: { 'background-color': a.color }, attrs: { 'aria-hidden': 'true' } }),
      `${a.name} `,
      h('span', { class: 'count-ins', text: `+${a.inserted}` }),
      ' ',
      h('span', { class: 'count-del', text: `−${a.deleted}` })
    ])))
  }

  /** Back to the live editor. */
  exitView () {
    if (this.viewAbort) this.viewAbort.abort()
    this._loadSoon.cancel()
    const wasViewing = !this.stage.hidden
    this.selected = null
    this.stage.hidden = true
    if (this.head) this.slider.value = String(this.head)
    this._describeSlider(this.head)
    this._describeSelection()
    this._markCurrent()
    if (wasViewing) this.onExitView()
  }

  _askRestore () {
    if (!this.canEdit || this.selected === null || !(this.selected < this.head)) return
    this.dialogText.textContent = `The text will become what it was at change ${this.selected}, for everyone editing. ` +
      'Nothing is lost: today’s text stays in the history and can be restored too.'
    this.confirmButton.disabled = false
    this.dialog.showModal()
    this.confirmButton.focus()
  }

  async _restore () {
    const seq = this.selected
    if (seq === null) return
    this.confirmButton.disabled = true
    try {
      const result = await this.api.restore(this.docId, seq)
      this.dialog.close()
      notify(`Restored the version from change ${seq}.`, { kind: 'success' })
      this.exitView()
      if (result && result.seq) this._setHead(result.seq)
      await this.refresh({ minSeq: result && result.seq ? result.seq : undefined })
    } catch (err) {
      this.dialog.close()
      notifyError('Could not restore', err)
    } finally {
      this.confirmButton.disabled = false
    }
  }

  async _nameVersion () {
    if (!this.canEdit) return
    const name = this.versionName.value.trim()
    if (!name) {
      this.versionName.focus()
      notify('Give the version a name first.')
      return
    }
    const seq = this.selected ?? this.head
    if (!seq) {
      notify('There is nothing to name yet: write something first.')
      return
    }
    this.versionButton.disabled = true
    try {
      const named = await this.api.nameVersion(this.docId, seq, name)
      this.versionName.value = ''
      notify(`Named change ${seq} “${name}”.`, { kind: 'success' })
      // Show the server's answer at once; then read the list at least as new
      // as our own write (the read side may lag the command by a moment).
      this.versions = [...this.versions.filter((v) => !(v.seq === named.seq && v.name === named.name)), named]
      this._renderVersions()
      const eventSeq = answerSeq(named)
      if (eventSeq) this._setHead(eventSeq)
      const versions = await this.api.listVersions(this.docId, { minSeq: eventSeq })
      this.versions = versions.items || []
      this._renderVersions()
    } catch (err) {
      notifyError('Could not name the version', err)
    } finally {
      this.versionButton.disabled = false
    }
  }
}
