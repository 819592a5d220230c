// Wiring only: read the route and the token, build the API client, render
// the page. `/` is the document list; `/d/{doc_id}` is one document.

import { Api, readToken } from './api.js'
import { renderHome } from './home.js'
import { renderDocument } from './document.js'
import { loadName } from './presence.js'
import { renderActivity } from './activity_page.js'
import { renderSearch } from './search_page.js'

const token = readToken()
const api = new Api({ token, name: loadName() })

// In-app links never carry the token: readToken() took it out of the address
// bar and keeps it for this tab, where the next page finds it.
const docUrl = (id) => `/d/${encodeURIComponent(id)}`
const homeUrl = '/'

const root = document.getElementById('app')
const match = window.location.pathname.match(/^\/d\/([^/]+)\/?$/)
if (match) {
  renderDocument(root, { api, docId: decodeURIComponent(match[1]), token, homeUrl })
} else if (window.location.pathname === '/activity') {
  renderActivity(root, { api, docUrl })
} else if (window.location.pathname === '/search') {
  renderSearch(root, { api, docUrl })
} else {
  renderHome(root, { api, docUrl, token })
}
root.removeAttribute('aria-busy')
