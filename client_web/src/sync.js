// The shared document: a Y.Doc kept in sync with the server by a stock
// WebsocketProvider, plus the two things the UI needs to tell people the
// truth: the connection state and whether their edits are durably saved.
//
// Durable acknowledgement (opt-in with ack=1, see DESIGN.md): the server sends
// [100, varUint(n), varUint(seq)] meaning "the first n sync step-2/update
// messages you sent on this WebSocket are committed (or were no-ops); the log
// head is at seq". We count what we send on each socket and compare.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import { ObservableV2 } from 'lib0/observable'

export const MESSAGE_ACK = 100
const MESSAGE_SYNC = 0
const MESSAGE_AUTH = 2
const SYNC_STEP_2 = 1
const SYNC_UPDATE = 2

/**
 * Whether to reconnect after the server closed the socket (docs/protocol.md,
 * "Close codes"). 4400-4499 mean reconnecting cannot help; 1013 and 4500-4599
 * (capacity, storage down) are worth a retry. 1009 means one of our updates is
 * over the size limit: reconnecting would resend it in step 2 and be closed again.
 */
const shouldReconnect = (event) => {
  if (event.code === 1009) return false
  return !(event.code >= 4400 && event.code < 4500)
}

/** Why the server will not have us, in words a person can act on. */
const closeReason = ({ code, reason }) => {
  if (code === 4401) return 'You need a valid access token to open this document.'
  if (code === 4403) return 'You do not have access to this document.'
  if (code === 4404) return 'This document does not exist, and your access cannot create it.'
  if (code === 4410) return 'This document was deleted. An administrator can restore it for a while.'
  if (code === 1009) return 'A change was too large for the server to save. Copy your text somewhere safe and reload.'
  if (reason) return `The server closed the connection: ${reason}`
  return `The server closed the connection (code ${code}).`
}

/**
 * True for frames that the server acknowledges: sync step 2 and sync update.
 * Both type bytes are below 128, so their varUint encoding is one byte each.
 */
const isAckedMessage = (bytes) =>
  bytes !== null && bytes.length >= 2 && bytes[0] === MESSAGE_SYNC &&
    (bytes[1] === SYNC_STEP_2 || bytes[1] === SYNC_UPDATE)

const asBytes = (data) => {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return null
}

/**
 * One document's live state.
 *
 * Events: `connection` (state: 'connecting'|'connected'|'reconnecting'|'offline'),
 * `save` (state: 'saved'|'saving'|'unsaved'|'offline'|'readonly'), `head` (seq),
 * `closed` ({code, message}) when the server refuses us for good,
 * `readonly` (reason) when the server says this connection may only read.
 */
export class DocumentSync extends ObservableV2 {
  /**
   * @param {{docId: string, name: string, token?: string|null, serverUrl?: string, readOnly?: boolean}} opts
   */
  constructor ({ docId, name, token = null, serverUrl = defaultServerUrl(), readOnly = false }) {
    super()
    this.docId = docId
    this.doc = new Y.Doc()
    this.text = this.doc.getText('content')
    this.undoManager = new Y.UndoManager(this.text)

    const params = { name, ack: '1' }
    if (token) params.token = token
    // connect: false so every listener is in place before the first socket
    // exists (the provider emits 'status' synchronously while connecting).
    this.provider = new WebsocketProvider(serverUrl, docId, this.doc, {
      params,
      connect: false,
      shouldReconnect
    })
    this.awareness = this.provider.awareness

    /** Acked messages sent on the current socket. */
    this.sent = 0
    this.acked = 0
    /** Local edits not yet handed to any socket that can still acknowledge them. */
    this.pendingOffline = false
    /** The log head seq most recently reported by the server. */
    this.headSeq = 0
    this.everConnected = false
    this.browserOffline = typeof navigator !== 'undefined' && navigator.onLine === false
    this.closedForGood = null
    this.connectionState = 'connecting'
    this.saveState = 'saved'
    /** A reader's writes are never acknowledged: there is nothing to save. */
    this.readOnly = readOnly

    this.provider.messageHandlers[MESSAGE_ACK] = (_encoder, decoder) => this._onAck(decoder)
    this.provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => this._onAuth(decoder)
    this.provider.on('status', ({ status }) => this._onStatus(status))
    this.provider.on('closed', (event) => this._onClosed(event))
    this.doc.on('update', (_update, origin) => this._onDocUpdate(origin))

    this._onBrowserOffline = () => {
      // Browsers keep a dead socket "open" for a long time when the network
      // goes; stop using it at once, and let the provider resend on return.
      this.browserOffline = true
      this.provider.disconnect()
      this._refresh()
    }
    this._onBrowserOnline = () => {
      this.browserOffline = false
      if (!this.closedForGood) this.provider.connect()
      this._refresh()
    }
    window.addEventListener('offline', this._onBrowserOffline)
    window.addEventListener('online', this._onBrowserOnline)

    if (!this.browserOffline) this.provider.connect()
    this._refresh()
  }

  get connected () {
    const ws = this.provider.ws
    return this.provider.wsconnected && ws !== null && ws.readyState === ws.OPEN
  }

  /** Changes the name used for attribution (takes effect on a new socket). */
  setName (name) {
    this.provider.params = { ...this.provider.params, name }
    if (this.provider.wsconnected || this.provider.wsconnecting) {
      // A fresh socket so the server attributes the next edits to the new
      // name; unacknowledged edits are resent by the sync handshake.
      this.provider.disconnect()
      this.provider.connect()
    }
  }

  /** Closes the socket for good (leaving the page). */
  destroy () {
    window.removeEventListener('offline', this._onBrowserOffline)
    window.removeEventListener('online', this._onBrowserOnline)
    this.provider.destroy()
    this.doc.destroy()
    super.destroy()
  }

  _onStatus (status) {
    if (status === 'connecting') this._watchSocket(this.provider.ws)
    if (status === 'connected') this.everConnected = true
    if (status === 'disconnected' && this.sent > this.acked) {
      // Those edits may never have been committed; the next handshake's
      // step 2 carries whatever the server still lacks.
      this.pendingOffline = true
    }
    this._refresh()
  }

  /** Counts the acknowledgeable messages sent on one socket. */
  _watchSocket (ws) {
    if (!ws || ws.__palimpsestWatched) return
    ws.__palimpsestWatched = true
    this.sent = 0
    this.acked = 0
    const send = ws.send.bind(ws)
    ws.send = (data) => {
      send(data)
      const bytes = asBytes(data)
      if (this.provider.ws !== ws || !isAckedMessage(bytes)) return
      this.sent += 1
      // A step 2 answers the server's step 1 with everything it lacks, so
      // edits made offline are now in flight on this socket.
      if (bytes[1] === SYNC_STEP_2) this.pendingOffline = false
      this._refresh()
    }
  }

  _onAck (decoder) {
    const n = decoding.readVarUint(decoder)
    const seq = decoding.hasContent(decoder) ? decoding.readVarUint(decoder) : null
    this.acked = Math.max(this.acked, Math.min(n, this.sent))
    if (seq !== null && seq > this.headSeq) {
      this.headSeq = seq
      this.emit('head', [seq])
    }
    this._refresh()
  }

  _onDocUpdate (origin) {
    // Updates applied by the provider came from the server (or another tab);
    // everything else is a local edit, which the provider sent only if the
    // socket was open.
    if (origin === this.provider) return
    if (!this.connected) this.pendingOffline = true
    this._refresh()
  }

  /** Auth message: only "permission denied" exists; the server will not take our writes. */
  _onAuth (decoder) {
    const kind = decoding.readVarUint(decoder)
    const reason = decoding.hasContent(decoder) ? decoding.readVarString(decoder) : ''
    if (kind !== 0) return
    if (!this.readOnly) {
      this.readOnly = true
      this.emit('readonly', [reason || 'read-only access to this document'])
    }
    this._refresh()
  }

  _onClosed (event) {
    this.closedForGood = { code: event.code, message: closeReason(event) }
    this.emit('closed', [this.closedForGood])
    this._refresh()
  }

  _refresh () {
    let connection
    if (this.connected) connection = 'connected'
    else if (this.browserOffline || this.closedForGood) connection = 'offline'
    else connection = this.everConnected ? 'reconnecting' : 'connecting'

    let save
    if (this.readOnly) {
      save = 'readonly'
    } else if (connection === 'connected') {
      save = this.pendingOffline || this.acked < this.sent ? 'saving' : 'saved'
    } else {
      save = this.pendingOffline ? 'unsaved' : 'offline'
    }
    if (connection !== this.connectionState) {
      this.connectionState = connection
      this.emit('connection', [connection])
    }
    if (save !== this.saveState) {
      this.saveState = save
      this.emit('save', [save])
    }
  }
}

/** ws(s)://this-host/ws: the provider appends /{doc_id}?params. */
export const defaultServerUrl = () => {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${window.location.host}/ws`
}
