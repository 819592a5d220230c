// Every HTTP call the client makes, in one place. The paths are the contract
// in DESIGN.md ("The read side"). Errors come back as
// {"error": {"code", "message"}} and are raised as ApiError.

/** An error answered by the server (or a failed request), fit to show. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never got an answer
   * @param {string} code machine-readable code from the server
   * @param {string} message human-readable message
   */
  constructor (status, code, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

const TOKEN_KEY = 'palimpsest.token'

const seqs = new WeakMap()

/**
 * The log seq an answer reflects (the `X-Palimpsest-Seq` header): for a
 * command, the seq of the event it appended. Pass it as `minSeq` to a later
 * query to read your own write. Undefined when the server did not say.
 */
export const answerSeq = (answer) => (answer && typeof answer === 'object' ? seqs.get(answer) : undefined)

/**
 * The auth token. A shared link carries it as `?token=` (or `#token=`, which
 * never reaches a server log); the page reads it once, keeps it for this tab
 * in sessionStorage, and takes it out of the address bar at once, so it is
 * not in the history, a bookmark, a screenshot of the URL, a Referer, or any
 * link the page draws. Later pages of the tab find it in sessionStorage.
 */
export const readToken = () => {
  const url = new URL(window.location.href)
  const hash = new URLSearchParams(url.hash.slice(1))
  const fromUrl = url.searchParams.get('token') || hash.get('token')
  if (url.searchParams.has('token') || hash.has('token')) {
    url.searchParams.delete('token')
    hash.delete('token')
    const rest = hash.toString()
    window.history.replaceState(window.history.state, '', url.pathname + url.search + (rest ? `#${rest}` : ''))
  }
  try {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl)
    return fromUrl || sessionStorage.getItem(TOKEN_KEY) || null
  } catch {
    return fromUrl || null
  }
}

const politeMessage = (status) => {
  if (status === 401) return 'You need to sign in (a token) to do that.'
  if (status === 403) return 'You do not have permission to do that.'
  if (status === 404) return 'Not found.'
  if (status === 409) return 'Someone else changed this at the same time; please try again.'
  if (status === 413) return 'That is too large.'
  if (status === 429) return 'Too many requests; please wait a moment.'
  if (status >= 500) return 'The server had a problem. Please try again shortly.'
  return `The request failed (HTTP ${status}).`
}

/** A client for the query and command API of one server. */
export class Api {
  /** @param {{base?: string, token?: string|null, name?: string|null}} [opts] */
  constructor ({ base = '', token = null, name = null } = {}) {
    this.base = base
    this.token = token
    /** Display name of an anonymous person, for attribution of commands. */
    this.name = name
  }

  async request (method, path, { query, body, signal } = {}) {
    const url = new URL(this.base + path, window.location.origin)
    // Commands are attributed like WebSocket edits: by the `name` parameter
    // (a query parameter rather than a header, so any Unicode name works).
    if (method !== 'GET' && this.name) url.searchParams.set('name', this.name)
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value))
    }
    const headers = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    let response
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal
      })
    } catch (err) {
      if (err && err.name === 'AbortError') throw err
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.')
    }
    const text = await response.text()
    let data = null
    if (text) {
      try {
        data = JSON.parse(text)
      } catch {
        data = null
      }
    }
    if (!response.ok) {
      const error = data && data.error
      throw new ApiError(
        response.status,
        (error && error.code) || `http_${response.status}`,
        (error && error.message) || politeMessage(response.status)
      )
    }
    const seq = Number(response.headers.get('X-Palimpsest-Seq'))
    if (data && typeof data === 'object' && Number.isFinite(seq) && seq > 0) seqs.set(data, seq)
    return data
  }

  /** `{items: [{id, title, seq, updated_at, size, contributors}], next}` */
  listDocuments ({ limit = 50, cursor } = {}) {
    return this.request('GET', '/api/documents', { query: { limit, cursor } })
  }

  createDocument (title) {
    return this.request('POST', '/api/documents', { body: { title } })
  }

  renameDocument (id, title) {
    return this.request('PATCH', `/api/documents/${encodeURIComponent(id)}`, { body: { title } })
  }

  /** `{id, title, seq, text, updated_at}`, now or at `at` (a seq). */
  getDocument (id, { at, minSeq, signal } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}`, {
      query: { at, min_seq: minSeq },
      signal
    })
  }

  /** `{items: [{number, from_seq, to_seq, authors, started_at, ended_at, inserted, deleted}], next}` */
  listRevisions (id, { limit = 50, cursor, minSeq } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/revisions`, {
      query: { limit, cursor, min_seq: minSeq }
    })
  }

  /** `{items: [{seq, name, actor, created_at}]}` */
  listVersions (id, { minSeq } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/versions`, {
      query: { min_seq: minSeq }
    })
  }

  nameVersion (id, seq, name) {
    return this.request('POST', `/api/documents/${encodeURIComponent(id)}/versions`, { body: { seq, name } })
  }

  /** `{from, to, changes: [{op, text, author}]}` */
  diff (id, from, to, { signal } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/diff`, {
      query: { from, to },
      signal
    })
  }

  /** `{seq, restored_from}` */
  restore (id, seq) {
    return this.request('POST', `/api/documents/${encodeURIComponent(id)}/restore`, { body: { seq } })
  }

  renameVersion (id, version, name) {
    return this.request('PATCH', `/api/documents/${encodeURIComponent(id)}/versions/${version}`, { body: { name } })
  }

  deleteVersion (id, version) {
    return this.request('DELETE', `/api/documents/${encodeURIComponent(id)}/versions/${version}`)
  }

  /** A new document with the text at `seq`: `{id, title, copied_from}` */
  copyDocument (id, seq) {
    return this.request('POST', `/api/documents/${encodeURIComponent(id)}/copy`, { body: { seq } })
  }

  /** Saves the text at `seq` as a Markdown file (fetched with the token, then saved). */
  async downloadMarkdown (id, seq) {
    const url = new URL(`${this.base}/api/documents/${encodeURIComponent(id)}/markdown`, window.location.origin)
    if (seq) url.searchParams.set('at', String(seq))
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {}
    const response = await fetch(url, { headers })
    if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, politeMessage(response.status))
    const disposition = response.headers.get('Content-Disposition') || ''
    const match = /filename="([^"]+)"/.exec(disposition)
    const blob = await response.blob()
    const link = document.createElement('a')
    link.href = URL.createObjectURL(blob)
    link.download = match ? match[1] : 'document.md'
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(link.href), 10000)
    return link.download
  }

  /**
   * Follows the document's feed (renames, restores, named versions) until
   * `signal` aborts: `onItem(item)` for each; reconnects after a drop, and
   * then calls `onItem({kind: 'reload'})` since items may have been missed.
   */
  async follow (id, onItem, signal) {
    const url = new URL(`${this.base}/api/documents/${encodeURIComponent(id)}/feed`, window.location.origin)
    const headers = { Accept: 'text/event-stream' }
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    let delay = 500
    let first = true
    while (!signal.aborted) {
      try {
        const response = await fetch(url, { headers, signal })
        if (!response.ok || !response.body) throw new Error(`feed: HTTP ${response.status}`)
        if (!first) onItem({ kind: 'reload' })
        first = false
        delay = 500
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            for (const line of block.split('\n')) {
              if (!line.startsWith('data: ')) continue
              try {
                onItem(JSON.parse(line.slice(6)))
              } catch {}
            }
          }
        }
      } catch (err) {
        if (signal.aborted) return
      }
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, 15000)
    }
  }

  // Review status, activity and search (server/http/insight_routes.py)

  /** `{id, status, seq, allowed, published_seq}` */
  getStatus (id, { minSeq } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/status`, { query: { min_seq: minSeq } })
  }

  /** `{id, status, from, seq}`; 409 `invalid_transition` with `error.allowed` */
  changeStatus (id, to, note) {
    return this.request('POST', `/api/documents/${encodeURIComponent(id)}/status`, { body: { to, note } })
  }

  /** `{items: [{from, to, actor, time, note, seq}], seq}` */
  statusHistory (id, { minSeq } = {}) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/status-history`, { query: { min_seq: minSeq } })
  }

  /** `{items: [{start, author, events, inserted, deleted, words_added, words_removed, active_seconds}], seq}` */
  activity ({ docId, bucket = 'hour', since } = {}) {
    const path = docId ? `/api/documents/${encodeURIComponent(docId)}/activity` : '/api/activity'
    return this.request('GET', path, { query: { bucket, since } })
  }

  /** `{items: [{id, users}]}` */
  presence () {
    return this.request('GET', '/api/activity/presence')
  }

  /** `{items: [{id, title, snippet, seq, score}]}` */
  search (q) {
    return this.request('GET', '/api/search', { query: { q } })
  }

  /** `{items: [{seq, time, author, change, snippet, link}], seq}` */
  historySearch (id, q) {
    return this.request('GET', `/api/documents/${encodeURIComponent(id)}/history-search`, { query: { q } })
  }

  /** A live EventSource of `/api/activity/stream` (its token in the query: EventSource sends no headers). */
  activityStream () {
    const url = new URL(this.base + '/api/activity/stream', window.location.origin)
    if (this.token) url.searchParams.set('token', this.token)
    return new EventSource(url)
  }
}
