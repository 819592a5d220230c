// The history panel: a time slider (by revision, by change, or between named
// versions; markers; playback), the revisions as working sessions with every
// author's share, named versions (rename, delete), and the stage: the
// document at a chosen point with that revision's own changes marked in each
// author's colour (or any two points compared), with next/previous change.
// Restore, copy to a new document and download act on the chosen point; the
// URL (?v=SEQ) names it, so a view can be shared.
//
// Restore is a command on the server; its effect reaches this editor (and
// every other) as an ordinary update over the WebSocket, and its notice
// through the document's feed (document.js), so nothing here touches the
// Y.Doc.

import { h, replaceChildren, notify, notifyError, debounce } from './dom.js'
import { actorName, avatar, colorFor, setContributors } from './presence.js'
import { answerSeq } from './api.js'
import { TimeSlider, shortTime, namesOf } from './slider.js'
import { ChangeNavigator, changeNodes, renderLegend } from './changes.js'

const PAGE = 200

/** Sets or clears `?v=` in the address bar without a navigation. */
const setUrlPoint = (seq) => {
  const url = new URL(window.location.href)
  if (seq) url.searchParams.set('v', String(seq))
  else url.searchParams.delete('v')
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash)
}

export class HistoryPanel {
  /**
   * @param {{api: import('./api.js').Api, docId: string,
   *   sync: import('./sync.js').DocumentSync,
   *   onEnterView: () => void, onExitView: () => void,
   *   onTitle?: (title: string) => void, canEdit?: boolean}} deps
   */
  constructor ({ api, docId, sync, onEnterView, onExitView, onTitle, canEdit = true }) {
    this.api = api
    this.canEdit = canEdit
    this.docId = docId
    this.sync = sync
    this.onEnterView = onEnterView
    this.onExitView = onExitView
    this.onTitle = onTitle || (() => {})
    this.head = 0
    this.selected = null
    this.compareFrom = ''
    this.isOpen = false
    this.revisionsNext = null
    this.viewAbort = null
    this.previewAbort = null
    this.revisions = []
    this.versions = []

    this.slider = new TimeSlider({
      onMove: (seq) => this._previewSoon(seq),
      onSettle: (seq) => this.select(seq)
    })
    this._buildPanel()
    this._buildStage()
    this._buildDialog()

    this._refreshSoon = debounce(() => this.refresh(), 600)
    this._previewSoon = debounce((seq) => this.preview(seq), 60)
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

    this.selectionTitle = h('p', { class: 'selection-title', attrs: { 'aria-live': 'polite', 'data-testid': 'selection-title' } })
    this.restoreButton = h('button', {
      type: 'button',
      class: 'button button-primary',
      text: 'Restore this version',
      disabled: true,
      attrs: { 'data-testid': 'restore-button' },
      on: { click: () => this._askRestore() }
    })
    this.copyButton = h('button', {
      type: 'button',
      class: 'button button-small',
      text: 'Copy to a new document',
      disabled: true,
      attrs: { 'data-testid': 'copy-button' },
      on: { click: () => this._copy() }
    })
    this.downloadButton = h('button', {
      type: 'button',
      class: 'button button-small',
      text: 'Download .md',
      attrs: { 'data-testid': 'download-button' },
      on: { click: () => this._download() }
    })
    this.compareSelect = h('select', {
      class: 'input input-small',
      id: 'compare-select',
      attrs: { 'data-testid': 'compare-select' }
    })
    this.compareSelect.addEventListener('change', () => {
      this.compareFrom = this.compareSelect.value
      if (this.selected !== null) this.select(this.selected)
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
        this.slider.el,
        h('section', { class: 'panel-section selection', attrs: { 'aria-label': 'Selected version' } }, [
          this.selectionTitle,
          h('div', { class: 'button-row' }, [this.restoreButton]),
          h('div', { class: 'button-row' }, [this.copyButton, this.downloadButton]),
          h('label', { class: 'field-label', htmlFor: 'compare-select', text: 'Show changes' }),
          this.compareSelect,
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
    this._renderCompare()
    this._describeSelection()
  }

  _buildStage () {
    this.stageTitle = h('p', { class: 'stage-title', attrs: { 'data-testid': 'stage-title' } })
    this.stageWhen = h('span', { class: 'stage-when' })
    this.legend = h('div', { class: 'legend', attrs: { 'aria-label': 'Changes by author', 'data-testid': 'legend' } })
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
    this.navigator = new ChangeNavigator(this.view)
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
        this.navigator.el,
        h('label', { class: 'check', htmlFor: 'highlight-changes' }, [this.highlightToggle, ' Highlight changes']),
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
    this.slider.pause()
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
    clearTimeout(this._confirmTimer)
    this._refreshSoon.cancel()
    this._previewSoon.cancel()
    this.slider.pause()
    if (this.viewAbort) this.viewAbort.abort()
    if (this.previewAbort) this.previewAbort.abort()
    this.dialog.remove()
  }

  /** Something changed in the history (an item of the document's feed, with its seq). */
  changed (item) {
    if (item && item.seq) this._setHead(item.seq)
    if (this.isOpen) this._refreshSoon()
  }

  _setHead (seq) {
    if (!(seq > this.head)) return
    this.head = seq
    this.slider.update({ head: seq })
    this._describeSelection()
  }

  /**
   * Reloads the head seq, revisions and versions, at least as new as
   * `minSeq` (default: the newer of the last seq the server acknowledged to
   * us and the newest the feed told of, so our own edits and others' named
   * versions are in). If the read side is too far behind, shows what it has.
   */
  async refresh ({ minSeq = Math.max(this.sync.headSeq || 0, this.head) || undefined } = {}) {
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
      setContributors(info.value.contributors)
    }
    if (revisions.status === 'fulfilled') {
      this.revisions = revisions.value.items || []
      this.revisionsNext = revisions.value.next || null
      for (const item of this.revisions) this._setHead(item.to_seq || 0)
    } else {
      this.revisionStatus.textContent = `Could not load revisions: ${revisions.reason.message}`
    }
    if (versions.status === 'fulfilled') {
      this.versions = versions.value.items || []
    } else {
      this.versionEmpty.hidden = false
      this.versionEmpty.textContent = `Could not load named versions: ${versions.reason.message}`
    }
    this.slider.update({ revisions: this.revisions, versions: this.versions, head: this.head })
    if (this.selected !== null) this.slider.moveTo(this.selected, { quiet: true })
    this._renderRevisions()
    this._renderVersions()
    this._renderCompare()
  }

  async _loadMoreRevisions () {
    if (!this.revisionsNext) return
    this.moreButton.disabled = true
    try {
      const page = await this.api.listRevisions(this.docId, { limit: PAGE, cursor: this.revisionsNext })
      this.revisions = this.revisions.concat(page.items || [])
      this.revisionsNext = page.next || null
      this.slider.update({ revisions: this.revisions })
      this._renderRevisions()
    } catch (err) {
      notifyError('Could not load older revisions', err)
    } finally {
      this.moreButton.disabled = false
    }
  }

  _revisionAt (seq) {
    return this.revisions.find((r) => r.from_seq <= seq && seq <= r.to_seq) || null
  }

  _timeOf (seq) {
    const revision = this._revisionAt(seq)
    return revision ? shortTime(revision.ended_at) : ''
  }

  _renderRevisions () {
    replaceChildren(this.revisionList, ...this.revisions.map((rev) => this._revisionItem(rev)))
    this.revisionStatus.textContent = this.revisions.length ? '' : 'No changes yet.'
    this.moreButton.hidden = !this.revisionsNext
    this._markCurrent()
  }

  _revisionItem (rev) {
    const names = namesOf(rev)
    const restore = rev.kind === 'restore'
    const shares = (rev.shares || []).map((s) => `${actorName(s.author)} +${s.inserted} −${s.deleted}`).join(', ')
    const when = rev.started_at && shortTime(rev.started_at) !== shortTime(rev.ended_at)
      ? `${shortTime(rev.started_at)}–${shortTime(rev.ended_at)}`
      : shortTime(rev.ended_at)
    const restoredWhen = restore ? this._timeOf(rev.restored_from) : ''
    const title = restore
      ? [h('span', { class: 'restore-mark', text: '↺ ', attrs: { 'aria-hidden': 'true' } }),
          h('span', { class: 'author', style: { color: colorFor(names[0] || '').color }, text: names[0] || 'Someone' }),
          ` restored ${restoredWhen ? `the version of ${restoredWhen}` : 'an earlier version'}`]
      : names.length
        ? names.flatMap((name, i) => [i ? ', ' : null, h('span', { class: 'author', style: { color: colorFor(name).color }, text: name })]).filter(Boolean)
        : ['Unknown author']
    const button = h('button', {
      type: 'button',
      class: `history-item${restore ? ' history-item-restore' : ''}`,
      dataset: { seq: String(rev.to_seq), kind: rev.kind || 'edit' },
      title: shares ? `${shares} characters` : '',
      attrs: { 'data-testid': 'revision-item' },
      on: { click: () => this.select(rev.to_seq) }
    }, [
      h('span', { class: 'avatar-stack' }, names.slice(0, 3).map((name) => avatar(name, { size: 'sm' }))),
      h('span', { class: 'history-item-main' }, [
        h('span', { class: 'history-item-title' }, title),
        h('span', { class: 'history-item-meta', text: shares && names.length > 1 ? `${when} · ${shares}` : when })
      ]),
      h('span', { class: 'counts' }, [
        h('span', { class: 'count-ins', text: `+${rev.inserted ?? 0}` }),
        h('span', { class: 'count-del', text: `−${rev.deleted ?? 0}` })
      ])
    ])
    return h('li', {}, [button])
  }

  _renderVersions () {
    const items = [...this.versions].sort((a, b) => b.seq - a.seq)
    replaceChildren(this.versionList, ...items.map((version) => this._versionItem(version)))
    this.versionEmpty.hidden = items.length > 0
    this.versionEmpty.textContent = 'No named versions yet.'
    this._markCurrent()
  }

  _versionItem (version) {
    const who = version.actor ? actorName(version.actor) : null
    const main = h('button', {
      type: 'button',
      class: 'history-item history-item-version',
      dataset: { seq: String(version.seq) },
      attrs: { 'data-testid': 'version-item' },
      on: { click: () => this.select(version.seq) }
    }, [
      h('span', { class: 'version-mark', attrs: { 'aria-hidden': 'true' } }, ['◆']),
      h('span', { class: 'history-item-main' }, [
        h('span', { class: 'history-item-title', text: version.name }),
        h('span', { class: 'history-item-meta', text: [this._timeOf(version.seq) || shortTime(version.created_at), who].filter(Boolean).join(' · ') })
      ])
    ])
    const tools = this.canEdit && version.id
      ? h('span', { class: 'version-tools' }, [
        h('button', {
          type: 'button',
          class: 'button button-quiet',
          text: 'Rename',
          attrs: { 'aria-label': `Rename ${version.name}`, 'data-testid': 'rename-version' },
          on: { click: () => this._renameVersion(version, item) }
        }),
        h('button', {
          type: 'button',
          class: `button button-quiet${this.confirmingDelete === version.id ? ' is-confirming' : ''}`,
          text: this.confirmingDelete === version.id ? 'Sure?' : 'Delete',
          attrs: { 'aria-label': `Delete the name ${version.name}`, 'data-testid': 'delete-version' },
          on: { click: () => this._deleteVersion(version) }
        })
      ])
      : null
    const item = h('li', { class: 'version-row' }, [main, tools])
    return item
  }

  _renameVersion (version, item) {
    const input = h('input', {
      type: 'text',
      class: 'input input-small',
      value: version.name,
      maxLength: 120,
      attrs: { 'aria-label': 'New name', 'data-testid': 'rename-version-input' }
    })
    const form = h('form', { class: 'inline-form rename-form' }, [input,
      h('button', { type: 'submit', class: 'button button-small', text: 'Save' })])
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const name = input.value.trim()
      if (!name || name === version.name) {
        this._renderVersions()
        return
      }
      try {
        const answer = await this.api.renameVersion(this.docId, version.id, name)
        version.name = name
        this._renderVersions()
        await this.refresh({ minSeq: answerSeq(answer) || undefined })
      } catch (err) {
        notifyError('Could not rename the version', err)
      }
    })
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation()
        this._renderVersions()
      }
    })
    replaceChildren(item, form)
    input.focus()
    input.select()
  }

  async _deleteVersion (version) {
    // Two steps: the first click asks (kept across re-renders of the list), the
    // second within 5 s deletes the name.
    if (this.confirmingDelete !== version.id) {
      this.confirmingDelete = version.id
      clearTimeout(this._confirmTimer)
      this._confirmTimer = setTimeout(() => {
        this.confirmingDelete = null
        this._renderVersions()
      }, 5000)
      this._renderVersions()
      return
    }
    this.confirmingDelete = null
    clearTimeout(this._confirmTimer)
    try {
      const answer = await this.api.deleteVersion(this.docId, version.id)
      this.versions = this.versions.filter((v) => v.id !== version.id)
      this._renderVersions()
      notify(`The name “${version.name}” is gone; the history it named is kept.`, { kind: 'success' })
      await this.refresh({ minSeq: answerSeq(answer) || undefined })
    } catch (err) {
      notifyError('Could not delete the name', err)
    }
  }

  _renderCompare () {
    const options = [
      h('option', { value: '', text: 'made in this revision' }),
      h('option', { value: 'now', text: 'between this and now' })
    ]
    for (const version of [...this.versions].sort((a, b) => b.seq - a.seq)) {
      options.push(h('option', { value: String(version.seq), text: `since “${version.name}”` }))
    }
    for (const rev of this.revisions.slice(0, 50)) {
      options.push(h('option', { value: String(rev.to_seq), text: `since ${shortTime(rev.ended_at)} (${namesOf(rev).join(', ')})` }))
    }
    replaceChildren(this.compareSelect, ...options)
    this.compareSelect.value = this.compareFrom
    if (this.compareSelect.value !== this.compareFrom) this.compareFrom = this.compareSelect.value = ''
  }

  _markCurrent () {
    for (const button of this.panel.querySelectorAll('.history-item')) {
      const current = this.selected !== null && Number(button.dataset.seq) === this.selected
      if (current) button.setAttribute('aria-current', 'true')
      else button.removeAttribute('aria-current')
    }
  }

  _pointName (seq) {
    const version = this.versions.find((v) => v.seq === seq)
    if (version) return `Named version “${version.name}”`
    const revision = this._revisionAt(seq)
    if (!revision) return seq >= this.head ? 'Now' : 'An earlier version'
    const names = namesOf(revision).join(', ')
    if (revision.kind === 'restore') return `Restore by ${names}`
    return `Revision by ${names}`
  }

  _describeSelection (at) {
    const editing = this.canEdit
    if (this.selected === null) {
      this.selectionTitle.textContent = 'Now: the text you are editing'
      this.versionLabel.textContent = 'Name the current version'
      this.restoreButton.disabled = true
      this.copyButton.disabled = !this.head
      return
    }
    const when = at && at.updated_at ? ` · ${shortTime(at.updated_at)}` : ''
    this.selectionTitle.textContent = `${this._pointName(this.selected)}${when}`
    this.versionLabel.textContent = 'Name this version'
    this.restoreButton.disabled = !editing || !(this.selected < this.head)
    this.copyButton.disabled = false
  }

  _enterStage (title) {
    const entering = this.stage.hidden
    this.stage.hidden = false
    this.stageTitle.textContent = title
    if (entering) this.onEnterView()
  }

  /** While dragging or playing: the text at `seq` only, stale fetches cancelled. */
  async preview (seq) {
    if (this.previewAbort) this.previewAbort.abort()
    const abort = new AbortController()
    this.previewAbort = abort
    this._enterStage(this._pointName(seq))
    this.stage.classList.add('is-loading')
    try {
      const at = await this.api.getDocument(this.docId, { at: seq, signal: abort.signal })
      if (abort.signal.aborted) return
      this.stage.classList.remove('is-loading')
      this.view.textContent = at.text ?? ''
      this.view.classList.toggle('is-empty', !at.text)
      this.stageWhen.textContent = shortTime(at.updated_at)
      this.stageTitle.textContent = this._pointName(seq)
      this.navigator.reset()
      replaceChildren(this.legend)
    } catch (err) {
      if (!abort.signal.aborted) this.stage.classList.remove('is-loading')
    }
  }

  /** The range whose changes the view marks when `seq` is shown. */
  _range (seq) {
    if (this.compareFrom === 'now') return [seq, Math.max(seq, this.head)]
    if (this.compareFrom) {
      const other = Number(this.compareFrom)
      return [Math.min(other, seq), Math.max(other, seq)]
    }
    const revision = this._revisionAt(seq)
    return [revision ? revision.from_seq - 1 : Math.max(0, seq - 1), seq]
  }

  /**
   * Shows the document at `seq` in place of the editor, with the changes of
   * its revision (or of the compared range) marked by author.
   */
  async select (seq) {
    seq = Math.max(1, Math.round(Number(seq)))
    if (!Number.isFinite(seq)) return
    if (!this.isOpen) this.open()
    this._previewSoon.cancel()
    if (this.previewAbort) this.previewAbort.abort()
    this.selected = seq
    this.slider.moveTo(seq, { quiet: true })
    this._describeSelection()
    this._markCurrent()
    setUrlPoint(seq)
    this.stage.classList.add('is-loading')
    this._enterStage(this._pointName(seq))
    this.stageWhen.textContent = ''

    if (this.viewAbort) this.viewAbort.abort()
    const abort = new AbortController()
    this.viewAbort = abort
    if (this.compareFrom === 'now') {
      // "Now" is the newest the read side has, asked for at the moment of comparing.
      try {
        const now = await this.api.getDocument(this.docId, { signal: abort.signal })
        this._setHead(now.seq || 0)
      } catch {}
      if (abort.signal.aborted || this.selected !== seq) return
    }
    const [from, to] = this._range(seq)
    // One heavy read, not two: a diff spells the text at its end (kept + inserted).
    const [diff] = await Promise.allSettled([
      from < to ? this.api.diff(this.docId, from, to, { signal: abort.signal }) : Promise.resolve(null)
    ])
    const atEnd = (d) => ({
      text: d.changes.filter((c) => c.op !== 'delete').map((c) => c.text).join(''),
      updated_at: (this._revisionAt(to) || {}).ended_at
    })
    const [at] = diff.status === 'fulfilled' && diff.value
      ? [{ status: 'fulfilled', value: atEnd(diff.value) }]
      : await Promise.allSettled([this.api.getDocument(this.docId, { at: to, signal: abort.signal })])
    if (abort.signal.aborted || this.selected !== seq) return
    this.stage.classList.remove('is-loading')
    if (at.status === 'rejected') {
      replaceChildren(this.view, h('p', { class: 'stage-error', text: `Could not load this version: ${at.reason.message}` }))
      replaceChildren(this.legend)
      this.navigator.reset()
      return
    }
    const text = at.value.text ?? ''
    this.stageWhen.textContent = shortTime(at.value.updated_at)
    this.stageTitle.textContent = to === seq
      ? this._pointName(seq)
      : `${this._pointName(seq)}, compared with now`
    this._describeSelection(at.value)
    const rendered = diff.status === 'fulfilled' && diff.value ? changeNodes(text, diff.value.changes) : null
    if (rendered) {
      replaceChildren(this.view, ...rendered.nodes)
      renderLegend(this.legend, rendered.authors, 'No changes in this range.')
    } else {
      this.view.textContent = text
      replaceChildren(this.legend, h('span', {
        class: 'muted small',
        text: diff.status === 'rejected' ? 'The changes are not available.' : 'No changes to show.'
      }))
    }
    this.view.classList.toggle('is-empty', !text)
    this.navigator.reset()
  }

  /** Back to the live editor. */
  exitView () {
    if (this.viewAbort) this.viewAbort.abort()
    if (this.previewAbort) this.previewAbort.abort()
    this._previewSoon.cancel()
    this.slider.pause()
    const wasViewing = !this.stage.hidden
    this.selected = null
    this.stage.hidden = true
    setUrlPoint(null)
    this.slider.update({ head: this.head })
    this._describeSelection()
    this._markCurrent()
    if (wasViewing) this.onExitView()
  }

  _askRestore () {
    if (!this.canEdit || this.selected === null || !(this.selected < this.head)) return
    this.dialogText.textContent = `The text will become what it was at ${this._timeOf(this.selected) || 'that point'} (${this._pointName(this.selected)}), for everyone editing. ` +
      'Nothing is lost: today’s text stays in the history and one click undoes the restore.'
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
      // Everyone, this page included, is told through the document's feed.
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

  async _copy () {
    const seq = this.selected ?? this.head
    if (!seq) return
    this.copyButton.disabled = true
    try {
      const copy = await this.api.copyDocument(this.docId, seq)
      const link = h('a', { href: `/d/${encodeURIComponent(copy.id)}`, text: copy.title, attrs: { 'data-testid': 'copy-link' } })
      notify(`Copied to a new document: ${copy.title}`, { kind: 'success', timeout: 12000 })
      const toast = document.querySelector('#toasts .toast:last-child .toast-text')
      if (toast) replaceChildren(toast, 'Copied to a new document: ', link)
    } catch (err) {
      notifyError('Could not copy', err)
    } finally {
      this.copyButton.disabled = false
    }
  }

  async _download () {
    try {
      await this.api.downloadMarkdown(this.docId, this.selected ?? undefined)
    } catch (err) {
      notifyError('Could not download', err)
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
      notify(`Named this version “${name}”.`, { kind: 'success' })
      this.versions = [...this.versions.filter((v) => v.id !== named.id), named]
      this._renderVersions()
      const eventSeq = answerSeq(named)
      if (eventSeq) this._setHead(eventSeq)
      await this.refresh({ minSeq: eventSeq })
    } catch (err) {
      notifyError('Could not name the version', err)
    } finally {
      this.versionButton.disabled = false
    }
  }
}
