// The document page at /d/{doc_id}: header with the editable title and status
// pills, the people here, the editor with its Markdown preview, and the
// history panel.

import { statusBar } from './status.js'
import { h, replaceChildren, notify, notifyAction, notifyError } from './dom.js'
import { DocumentSync } from './sync.js'
import { createEditor, bindPreview, setReadOnly } from './editor.js'
import { accessFor } from './access.js'
import { actorName, announce, bindPeopleList, loadName, nameField, setContributors } from './presence.js'
import { HistoryPanel } from './history.js'
import { shortTime } from './slider.js'
import { brand, connectionPill, savePill } from './chrome.js'

const MODE_KEY = 'palimpsest.viewMode'
const MODES = [
  ['write', 'Write'],
  ['split', 'Split'],
  ['preview', 'Preview']
]

const initialMode = () => {
  try {
    const stored = localStorage.getItem(MODE_KEY)
    if (MODES.some(([mode]) => mode === stored)) return stored
  } catch {}
  return window.matchMedia('(min-width: 1100px)').matches ? 'split' : 'write'
}

/**
 * The editable title: Enter or leaving the field renames, Escape reverts.
 * Returns the input and a setter for titles coming from the server.
 */
const titleField = (api, docId, canRename) => {
  const input = h('input', {
    type: 'text',
    class: 'doc-title',
    value: '',
    placeholder: 'Untitled document',
    maxLength: 200,
    spellcheck: false,
    autocomplete: 'off',
    readOnly: !canRename,
    title: canRename ? 'Rename the document' : 'Only people who may edit this document can rename it',
    attrs: { 'data-testid': 'doc-title', 'aria-label': 'Document title' }
  })
  // The input is the visible heading; this one names the page for screen readers.
  const heading = h('h1', { class: 'visually-hidden' })
  let current = ''
  const show = (title) => {
    current = title
    if (document.activeElement !== input) input.value = title
    document.title = `${title || 'Untitled document'} · Palimpsest`
    heading.textContent = title || 'Untitled document'
  }
  const commit = async () => {
    const title = input.value.trim()
    if (!title || !canRename) {
      input.value = current
      return
    }
    if (title === current) return
    try {
      const renamed = await api.renameDocument(docId, title)
      show((renamed && renamed.title) || title)
      notify('Title saved.', { kind: 'success' })
    } catch (err) {
      input.value = current
      notifyError('Could not rename the document', err)
    }
  }
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault()
      input.blur()
    } else if (event.key === 'Escape') {
      input.value = current
      input.blur()
    }
  })
  input.addEventListener('blur', commit)
  return { input, show, heading }
}

/**
 * Renders the document page for `docId` into `root`.
 *
 * @param {HTMLElement} root
 * @param {{api: import('./api.js').Api, docId: string, token: string|null, homeUrl: string}} deps
 */
export const renderDocument = (root, { api, docId, token, homeUrl }) => {
  const access = accessFor(token, docId)
  // With a token the server names you (the token's user); the history calls
  // you by the user id, so that is also what your colour is made from.
  const name = access.identity ? access.identity.name : loadName()
  const colorKey = access.identity ? access.identity.userId : name
  const sync = new DocumentSync({ docId, name, token, readOnly: !access.canWrite })
  announce(sync.awareness, name, colorKey)

  const conn = connectionPill()
  const save = savePill()
  sync.on('connection', (state) => conn.set(state))
  sync.on('save', (state) => save.set(state))
  conn.set(sync.connectionState)
  save.set(sync.saveState)

  const title = titleField(api, docId, access.canWrite)
  const banner = h('div', { class: 'banner', hidden: true, attrs: { role: 'alert' } })
  sync.on('closed', ({ message }) => {
    banner.hidden = false
    replaceChildren(banner, h('span', { text: message }), ' ', h('a', { href: homeUrl, text: 'Back to all documents' }))
  })

  // People here.
  const peopleList = h('ul', { class: 'people-list', attrs: { 'data-testid': 'people-list', 'aria-label': 'People in this document' } })
  const peopleCount = h('span', { class: 'people-count' })
  bindPeopleList(sync.awareness, peopleList, peopleCount)

  // Editor and preview.
  const editorHost = h('div', { class: 'editor', attrs: { 'data-testid': 'editor' } })
  const preview = h('article', {
    class: 'preview markdown-body',
    tabIndex: 0,
    attrs: { 'aria-label': 'Preview of the rendered Markdown', 'data-testid': 'preview' }
  })
  const editorPane = h('section', { class: 'pane pane-editor', attrs: { 'aria-label': 'Editor' } }, [editorHost])
  const previewPane = h('section', { class: 'pane pane-preview', attrs: { 'aria-label': 'Preview' } }, [preview])
  const workspace = h('div', { class: 'workspace' }, [editorPane, previewPane])
  const view = createEditor(editorHost, sync, { readOnly: !access.canWrite })
  sync.on('readonly', (reason) => {
    setReadOnly(view, true)
    notify(`You can read this document but not edit it (${reason}).`, { kind: 'error' })
  })

  let mode = initialMode()
  const modeButtons = MODES.map(([value, label]) => h('button', {
    type: 'button',
    class: 'segment',
    text: label,
    dataset: { mode: value },
    attrs: { 'aria-pressed': String(value === mode), 'data-testid': `mode-${value}` },
    on: { click: () => setMode(value) }
  }))
  const previewBinding = bindPreview(preview, sync.text, () => mode !== 'write')
  const setMode = (next) => {
    mode = next
    workspace.dataset.mode = next
    for (const button of modeButtons) button.setAttribute('aria-pressed', String(button.dataset.mode === next))
    try {
      localStorage.setItem(MODE_KEY, next)
    } catch {}
    previewBinding.refresh()
    if (next !== 'preview') view.requestMeasure()
  }
  setMode(mode)

  // History.
  const historyToggle = h('button', {
    type: 'button',
    class: 'button button-quiet history-toggle',
    attrs: { 'data-testid': 'history-toggle', 'aria-expanded': 'false', 'aria-controls': 'history-panel', 'aria-keyshortcuts': 'Alt+H' }
  }, [h('span', { class: 'button-icon', text: '⟲', attrs: { 'aria-hidden': 'true' } }), 'History'])
  const body = h('div', { class: 'doc-body' })
  const history = new HistoryPanel({
    api,
    docId,
    sync,
    canEdit: access.canWrite,
    onTitle: (t) => title.show(t),
    onEnterView: () => {
      workspace.hidden = true
      body.classList.add('viewing-history')
    },
    onExitView: () => {
      workspace.hidden = false
      body.classList.remove('viewing-history')
      view.focus()
    }
  })
  history.onToggle((open) => {
    historyToggle.setAttribute('aria-expanded', String(open))
    body.classList.toggle('history-open', open)
    if (!open) historyToggle.focus({ preventScroll: true })
  })
  historyToggle.addEventListener('click', () => history.toggle())
  body.append(workspace, history.stage, history.panel)

  const onKey = (event) => {
    if (event.altKey && !event.ctrlKey && !event.metaKey && (event.key === 'h' || event.code === 'KeyH')) {
      event.preventDefault()
      history.toggle()
    }
  }
  window.addEventListener('keydown', onKey)

  const header = h('header', { class: 'app-header doc-header' }, [
    brand({ compact: true, href: homeUrl }),
    h('div', { class: 'title-block' }, [title.input]),
    h('div', { class: 'pills' }, [conn.el, save.el]),
    h('div', { class: 'header-spacer' }),
    nameField((newName) => {
      myName = newName
      api.name = newName
      announce(sync.awareness, newName)
      sync.setName(newName)
    }, access.identity)
  ])
  const toolbar = h('div', { class: 'toolbar', attrs: { role: 'toolbar', 'aria-label': 'Document tools' } }, [
    h('div', { class: 'segmented', attrs: { role: 'group', 'aria-label': 'View' } }, modeButtons),
    h('div', { class: 'people' }, [peopleCount, peopleList]),
    historyToggle
  ])
  const review = statusBar({ api, docId, access, sync, view })
  replaceChildren(root, header, banner, h('main', { id: 'main', class: 'doc-main', tabIndex: -1 }, [title.heading, review.el, toolbar, body]))

  // The title and head seq come from the read side; the contributors' order
  // gives everyone the same, distinct colours (re-announced once known).
  let myName = name
  const contributorsKnown = new Set()
  const loadInfo = async () => {
    try {
      const info = await api.getDocument(docId)
      title.show(info.title || '')
      for (const c of info.contributors || []) contributorsKnown.add(String(c).toLowerCase())
      if (setContributors(info.contributors)) announce(sync.awareness, myName, access.identity ? colorKey : myName)
    } catch (err) {
      if (err.status === 404) {
        banner.hidden = false
        replaceChildren(banner, h('span', { text: 'This document is not on the server (yet). ' }), h('a', { href: homeUrl, text: 'Back to all documents' }))
      } else {
        notifyError('Could not load the document details', err)
      }
    }
  }
  loadInfo()
  // Until our first edit makes us a contributor, each acknowledgement may be
  // the one that did: ask again (at most every 2 s) to take our colour.
  const me = () => (access.identity ? colorKey : myName).toLowerCase()
  let infoTimer = null
  sync.on('head', () => {
    if (infoTimer || contributorsKnown.has(me())) return
    infoTimer = setTimeout(() => { infoTimer = null; loadInfo() }, 2000)
  })

  // What others do to the document besides typing reaches us through its feed
  // (renames, restores, named versions), the moment it is committed.
  const feedAbort = new AbortController()
  const restoreNotice = async (item) => {
    let when = ''
    try {
      when = shortTime((await api.getDocument(docId, { at: item.restored_from })).updated_at)
    } catch {}
    const who = item.actor === (access.identity ? access.identity.userId : myName) ? 'You' : actorName(item.actor)
    notifyAction(`${who} restored the version of ${when || 'an earlier time'}`, {
      label: 'Undo',
      testid: 'restore-notice',
      onAction: async () => {
        try {
          await api.restore(docId, item.seq - 1)
        } catch (err) {
          notifyError('Could not undo the restore', err)
        }
      }
    })
  }
  api.follow(docId, (item) => {
    if (item.kind === 'rename') {
      title.show(item.title || '')
    } else if (item.kind === 'restore') {
      restoreNotice(item)
    } else if (item.kind === 'reload') {
      loadInfo()
    }
    history.changed(item)
  }, feedAbort.signal)
  const urlPoint = Number(new URL(window.location.href).searchParams.get('v'))
  if (Number.isInteger(urlPoint) && urlPoint > 0) history.select(urlPoint)

  // Unsent edits are the one thing a person could lose by leaving.
  const beforeUnload = (event) => {
    if (sync.saveState === 'unsaved') {
      event.preventDefault()
      event.returnValue = ''
    }
  }
  window.addEventListener('beforeunload', beforeUnload)

  view.focus()
  // A link into the time slider (from history search): /d/{doc}?seq=N opens the history there.
  const atSeq = Number(new URLSearchParams(window.location.search).get('seq'))
  if (Number.isFinite(atSeq) && atSeq > 0) {
    history.open()
    history.refresh().then(() => history.select(atSeq), () => {})
  }
  // A handle for debugging in the console and for browser tests.
  window.__palimpsest = { sync, view, history }

  return () => {
    feedAbort.abort()
    clearTimeout(infoTimer)
    review.destroy()
    window.removeEventListener('keydown', onKey)
    window.removeEventListener('beforeunload', beforeUnload)
    history.destroy()
    view.destroy()
    sync.destroy()
  }
}
