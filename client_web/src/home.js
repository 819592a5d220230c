// The document list at `/`: newest edit first, with create, open and rename.

import { h, replaceChildren, notify, notifyError, timeEl } from './dom.js'
import { actorName, avatar, nameField } from './presence.js'
import { brand } from './chrome.js'
import { accessFor } from './access.js'

const UNTITLED = 'Untitled document'

/**
 * Renders the home page into `root`.
 *
 * @param {HTMLElement} root
 * @param {{api: import('./api.js').Api, docUrl: (id: string) => string, token?: string|null}} deps
 */
export const renderHome = (root, { api, docUrl, token = null }) => {
  const identity = accessFor(token, null).identity
  document.title = 'Documents · Palimpsest'

  const titleInput = h('input', {
    type: 'text',
    class: 'input',
    id: 'new-doc-title',
    placeholder: UNTITLED,
    maxLength: 200,
    autocomplete: 'off',
    attrs: { 'data-testid': 'new-doc-title' }
  })
  const createButton = h('button', {
    type: 'submit',
    class: 'button button-primary',
    attrs: { 'data-testid': 'create-doc' }
  }, [h('span', { class: 'button-icon', text: '+', attrs: { 'aria-hidden': 'true' } }), 'New document'])
  const createForm = h('form', { class: 'new-doc', attrs: { 'aria-label': 'Create a document' } }, [
    h('label', { class: 'visually-hidden', htmlFor: 'new-doc-title', text: 'Title of the new document' }),
    titleInput,
    createButton
  ])
  createForm.addEventListener('submit', async (event) => {
    event.preventDefault()
    const title = titleInput.value.trim() || UNTITLED
    createButton.disabled = true
    try {
      const created = await api.createDocument(title)
      window.location.assign(docUrl(created.id))
    } catch (err) {
      notifyError('Could not create the document', err)
      createButton.disabled = false
    }
  })

  const list = h('ul', { class: 'doc-list', attrs: { 'data-testid': 'doc-list', 'aria-label': 'Documents' } })
  const status = h('p', { class: 'doc-list-status', attrs: { 'aria-live': 'polite' } })
  const more = h('button', { type: 'button', class: 'button button-quiet', text: 'Show more', hidden: true })
  let next = null

  const load = async (cursor) => {
    status.textContent = cursor ? '' : 'Loading documents…'
    more.disabled = true
    try {
      const page = await api.listDocuments({ cursor })
      if (!cursor) replaceChildren(list)
      for (const item of page.items || []) list.append(docItem(item))
      next = page.next || null
      more.hidden = !next
      status.textContent = list.children.length === 0
        ? 'No documents yet. Give the first one a title above.'
        : ''
    } catch (err) {
      status.textContent = `Could not load the documents: ${err.message}`
    } finally {
      more.disabled = false
    }
  }
  more.addEventListener('click', () => load(next))

  const docItem = (doc) => {
    const link = h('a', { class: 'doc-link', href: docUrl(doc.id), text: doc.title || UNTITLED })
    const contributors = (doc.contributors || []).map(actorName)
    const shown = contributors.slice(0, 5)
    const meta = h('div', { class: 'doc-meta' }, [
      doc.updated_at ? h('span', {}, ['Edited ', timeEl(doc.updated_at)]) : h('span', { text: 'Not edited yet' }),
      typeof doc.size === 'number' ? h('span', { text: `${doc.size.toLocaleString()} characters` }) : null
    ])
    const people = h('div', {
      class: 'avatar-stack',
      attrs: contributors.length
        ? { role: 'img', 'aria-label': `Contributors: ${contributors.join(', ')}` }
        : { 'aria-hidden': 'true' }
    }, [
      ...shown.map((name) => avatar(name, { size: 'sm' })),
      contributors.length > shown.length
        ? h('span', { class: 'avatar avatar-sm avatar-more', text: `+${contributors.length - shown.length}`, attrs: { 'aria-hidden': 'true' } })
        : null
    ])
    const renameButton = h('button', {
      type: 'button',
      class: 'button button-quiet button-small',
      text: 'Rename',
      attrs: { 'aria-label': `Rename “${doc.title || UNTITLED}”`, 'data-testid': 'rename-doc' }
    })
    const canRename = accessFor(token, doc.id).canWrite
    const item = h('li', { class: 'doc-item', dataset: { id: doc.id }, attrs: { 'data-testid': 'doc-item' } }, [
      h('div', { class: 'doc-entry' }, [link, meta]),
      people,
      canRename ? renameButton : null
    ])
    renameButton.addEventListener('click', () => startRename(item, doc, link))
    return item
  }

  const startRename = (item, doc, link) => {
    const input = h('input', {
      type: 'text',
      class: 'input input-inline',
      value: doc.title || '',
      maxLength: 200,
      attrs: { 'aria-label': 'New title', 'data-testid': 'rename-input' }
    })
    const save = h('button', { type: 'submit', class: 'button button-primary button-small', text: 'Save' })
    const cancel = h('button', { type: 'button', class: 'button button-quiet button-small', text: 'Cancel' })
    const form = h('form', { class: 'rename-form' }, [input, save, cancel])
    const original = Array.from(item.childNodes)
    const close = () => {
      item.replaceChildren(...original)
      link.focus()
    }
    cancel.addEventListener('click', close)
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') close()
    })
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const title = input.value.trim()
      if (!title || title === doc.title) return close()
      save.disabled = true
      try {
        const renamed = await api.renameDocument(doc.id, title)
        doc.title = (renamed && renamed.title) || title
        link.textContent = doc.title
        notify(`Renamed to “${doc.title}”`, { kind: 'success' })
        close()
      } catch (err) {
        notifyError('Could not rename', err)
        save.disabled = false
      }
    })
    item.replaceChildren(form)
    input.focus()
    input.select()
  }

  replaceChildren(root,
    h('header', { class: 'app-header' }, [
      brand(),
      h('div', { class: 'header-spacer' }),
      h('a', { href: '/activity', class: 'button button-quiet', text: 'Activity' }),
      h('a', { href: '/search', class: 'button button-quiet', text: 'Search' }),
      nameField((name) => {
        api.name = name
        notify('Name saved. Others will see it when you open a document.')
      }, identity)
    ]),
    h('main', { id: 'main', class: 'home', tabIndex: -1 }, [
      h('div', { class: 'home-top' }, [
        h('div', {}, [
          h('h1', { class: 'home-title', text: 'Documents' }),
          h('p', { class: 'home-lede', text: 'Write together in Markdown. Every change is kept; go back to any moment.' })
        ]),
        createForm
      ]),
      list,
      status,
      more
    ])
  )
  load(null)
}
