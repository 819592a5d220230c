// The review status of a document, on its page: a badge, the transitions
// this person may make (publish and archive need admin), the status history,
// and for reviewers what changed since the last publication (a diff). A
// published or archived document is read-only: the server tells the editor's
// socket at the transition, and the bar follows the status from there.

import { h, replaceChildren, notify, notifyError, timeEl } from './dom.js'
import { setReadOnly } from './editor.js'

const LABELS = { draft: 'Draft', in_review: 'In review', published: 'Published', archived: 'Archived' }
const ACTIONS = {
  'draft>in_review': 'Submit for review',
  'in_review>draft': 'Request changes',
  'in_review>published': 'Publish',
  'published>draft': 'Reopen',
  'draft>archived': 'Archive',
  'in_review>archived': 'Archive',
  'published>archived': 'Archive',
  'archived>draft': 'Unarchive'
}
const ADMIN_TARGETS = new Set(['published', 'archived'])
const FROZEN = new Set(['published', 'archived'])

/**
 * @param {{api: import('./api.js').Api, docId: string, access: {canWrite: boolean, canAdmin: boolean},
 *   sync: any, view: any}} deps
 */
export const statusBar = ({ api, docId, access, sync, view }) => {
  const badge = h('span', { class: 'status-badge', attrs: { 'data-testid': 'status-badge' } })
  const actions = h('div', { class: 'status-actions', attrs: { 'data-testid': 'status-actions' } })
  const note = h('input', {
    type: 'text',
    class: 'input input-inline status-note',
    placeholder: 'Note (optional)',
    maxLength: 1000,
    attrs: { 'aria-label': 'Note for the status change', 'data-testid': 'status-note' }
  })
  const historyList = h('ol', { class: 'status-history', attrs: { 'data-testid': 'status-history' } })
  const changes = h('div', { class: 'status-changes', attrs: { 'data-testid': 'status-changes' } })
  const details = h('details', { class: 'status-details' }, [
    h('summary', { text: 'Review' }), historyList, changes
  ])
  const el = h('div', { class: 'status-bar', attrs: { role: 'region', 'aria-label': 'Review status' } }, [
    badge, actions, note, details
  ])
  let current = null
  let frozenSince = null // the seq of the transition that made it read-only, once known

  const applyFrozen = (info) => {
    if (FROZEN.has(info.status)) {
      frozenSince = info.since
      setReadOnly(view, true)
    } else if (access.canWrite && sync.readOnly && frozenSince !== null && info.since > frozenSince) {
      // Reopened after the freeze we knew of (a stale answer never lifts it).
      frozenSince = null
      sync.readOnly = false
      sync._refresh()
      setReadOnly(view, false)
    }
  }

  const render = (info) => {
    current = info
    badge.textContent = LABELS[info.status] || info.status
    badge.dataset.status = info.status
    const buttons = (info.allowed || [])
      .filter((to) => ADMIN_TARGETS.has(to) ? access.canAdmin : access.canWrite)
      .map((to) => h('button', {
        type: 'button',
        class: `button button-small ${to === 'published' ? 'button-primary' : 'button-quiet'}`,
        text: ACTIONS[`${info.status}>${to}`] || to,
        attrs: { 'data-testid': `status-to-${to}` },
        on: { click: () => move(to) }
      }))
    replaceChildren(actions, ...buttons)
    note.hidden = buttons.length === 0
    applyFrozen(info)
  }

  const loadHistory = async (minSeq) => {
    const history = await api.statusHistory(docId, { minSeq })
    replaceChildren(historyList, ...history.items.slice().reverse().map((item) => h('li', {}, [
      h('strong', { text: `${LABELS[item.from] || item.from} → ${LABELS[item.to] || item.to}` }),
      ` by ${item.actor} `, timeEl(item.time),
      item.note ? h('span', { class: 'status-note-text', text: ` “${item.note}”` }) : null
    ])))
    if (current && current.published_seq && current.status === 'in_review') {
      const doc = await api.getDocument(docId)
      const diff = await api.diff(docId, current.published_seq, doc.seq)
      replaceChildren(changes,
        h('h3', { text: 'Changed since the last publication' }),
        h('p', { class: 'diff-text' }, diff.changes.map((c) => h(
          c.op === 'insert' ? 'ins' : c.op === 'delete' ? 'del' : 'span', { text: c.text }))))
    } else {
      replaceChildren(changes)
    }
  }

  const refresh = async (minSeq) => {
    try {
      render(await api.getStatus(docId, { minSeq }))
      await loadHistory(minSeq)
    } catch (err) {
      if (err.status !== 404) notifyError('Could not load the review status', err)
    }
  }

  const move = async (to) => {
    try {
      const moved = await api.changeStatus(docId, to, note.value.trim())
      note.value = ''
      notify(`Now ${LABELS[moved.status] || moved.status}`, { kind: 'success' })
      await refresh(moved.seq)
    } catch (err) {
      notifyError('Could not change the status', err)
      refresh()
    }
  }

  // Transitions made elsewhere: publishing and archiving are announced on the editor's own
  // socket (permission denied); the others are seen by polling. Not the activity stream: an
  // EventSource per open document would hold one of the browser's six connections per host.
  sync.on('readonly', async () => {
    // The socket was told first: the read model follows within moments.
    for (let i = 0; i < 20 && !(current && FROZEN.has(current.status)); i++) {
      await refresh()
      if (!(current && FROZEN.has(current.status))) await new Promise((resolve) => setTimeout(resolve, 250))
    }
  })
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') refresh()
  }, 10000)
  refresh()
  return { el, refresh, destroy: () => clearInterval(timer) }
}
