// The search page at /search: full-text search over every document the
// caller may read, and (with ?doc=) when a phrase appeared in and disappeared
// from one document's history, each linking into the time slider.

import DOMPurify from 'dompurify'
import { h, replaceChildren, notifyError, timeEl } from './dom.js'
import { brand } from './chrome.js'

/** The server's snippet: escaped text with <mark> around matches; nothing else survives. */
const snippet = (html) => {
  const el = h('p', { class: 'search-snippet' })
  el.innerHTML = DOMPurify.sanitize(html, { ALLOWED_TAGS: ['mark'], ALLOWED_ATTR: [] })
  return el
}

export const renderSearch = (root, { api, docUrl }) => {
  const params = new URLSearchParams(window.location.search)
  const docId = params.get('doc')
  document.title = 'Search · Palimpsest'
  const input = h('input', {
    type: 'search', class: 'input', value: params.get('q') || '',
    placeholder: docId ? `A phrase in the history of ${docId}` : 'Search every document',
    attrs: { 'aria-label': 'Search', 'data-testid': 'search-input' }
  })
  const results = h('ol', { class: 'search-results', attrs: { 'data-testid': 'search-results' } })
  const status = h('p', { class: 'doc-list-status', attrs: { 'aria-live': 'polite' } })
  const form = h('form', { class: 'new-doc', attrs: { role: 'search' } }, [input,
    h('button', { type: 'submit', class: 'button button-primary', text: 'Search' })])

  const run = async () => {
    const q = input.value.trim()
    if (!q) return
    const url = new URL(window.location.href)
    url.searchParams.set('q', q)
    window.history.replaceState(null, '', url)
    status.textContent = 'Searching…'
    try {
      if (docId) {
        const found = await api.historySearch(docId, q)
        replaceChildren(results, ...found.items.map((item) => h('li', { class: 'search-hit', attrs: { 'data-testid': 'search-hit' } }, [
          h('a', { href: item.link, text: `${item.change === 'appeared' ? 'Appeared' : 'Disappeared'} at #${item.seq}` }),
          ` by ${item.author} `, timeEl(item.time), snippet(item.snippet)
        ])))
        status.textContent = found.items.length ? `As of #${found.seq}` : 'Never in this document.'
      } else {
        const found = await api.search(q)
        replaceChildren(results, ...found.items.map((item) => h('li', { class: 'search-hit', attrs: { 'data-testid': 'search-hit' } }, [
          h('a', { href: docUrl(item.id), text: item.title || item.id }),
          h('span', { class: 'muted', text: ` #${item.seq}` }),
          snippet(item.snippet)
        ])))
        status.textContent = found.items.length ? '' : 'No document contains that.'
      }
    } catch (err) {
      status.textContent = ''
      notifyError('Could not search', err)
    }
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); run() })

  replaceChildren(root,
    h('header', { class: 'app-header' }, [brand(), h('div', { class: 'header-spacer' }),
      h('a', { href: '/activity', class: 'button button-quiet', text: 'Activity' })]),
    h('main', { id: 'main', class: 'home search', tabIndex: -1 }, [
      h('div', { class: 'home-top' }, [h('h1', { class: 'home-title', text: docId ? 'Search the history' : 'Search' }), form]),
      status, results
    ]))
  if (input.value) run()
}
