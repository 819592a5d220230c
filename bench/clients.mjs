// Stock y-websocket clients for the benchmark drivers (replay.mjs, fanout.mjs).
//
// Every client is a plain WebsocketProvider + Y.Doc, exactly what an editor runs; many of them
// live in one Node process so that the whole client side is one thread (one core at most).
// BroadcastChannel is disabled: Node 20 has a global one, and providers in one process would
// otherwise sync with each other without the server.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { gunzipSync } from 'node:zlib'
import { readFileSync } from 'node:fs'

// `ws` offers permessage-deflate by default, as browsers do; this class offers nothing.
class NoDeflateWebSocket extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols, { perMessageDeflate: false })
  }
}

// Every provider adds a process 'exit' listener; dozens of clients in one process are intended.
process.setMaxListeners(0)

export function parseArgs (argv, defaults) {
  const out = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    const key = a.slice(2).replace(/-/g, '_')
    if (key.startsWith('no_')) {
      out[key.slice(3)] = false
      continue
    }
    if (!(key in defaults)) throw new Error(`unknown option ${a}`)
    const v = argv[++i]
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v
  }
  return out
}

export class Client {
  constructor (url, docName, { deflate = true, name = '' } = {}) {
    this.name = name
    this.doc = new Y.Doc()
    this.text = this.doc.getText('content')
    this.provider = new WebsocketProvider(url, docName, this.doc, {
      WebSocketPolyfill: deflate ? WebSocket : NoDeflateWebSocket,
      disableBc: true,
      connect: false
    })
    this.closes = []
    this.provider.on('connection-close', (ev) => {
      this.closes.push({ code: ev ? ev.code : null, reason: ev ? String(ev.reason || '') : null })
    })
    this._waiters = new Set()
    const recheck = () => {
      for (const w of this._waiters) {
        if (w.check()) {
          this._waiters.delete(w)
          clearTimeout(w.timer)
          w.resolve()
        }
      }
    }
    this.doc.on('afterTransaction', recheck)
    this.provider.on('sync', recheck)
    this.provider.awareness.on('change', recheck)
  }

  connect () {
    this.provider.connect()
  }

  get extensions () {
    return this.provider.ws ? (this.provider.ws.extensions || '') : null
  }

  get bufferedAmount () {
    return this.provider.ws ? this.provider.ws.bufferedAmount : 0
  }

  waitFor (check, timeoutMs, describe) {
    return new Promise((resolve, reject) => {
      if (check()) return resolve()
      const w = { check, resolve }
      w.timer = setTimeout(() => {
        this._waiters.delete(w)
        reject(new Error(`${this.name}: ${describe()}`))
      }, timeoutMs)
      this._waiters.add(w)
    })
  }

  waitSynced (timeoutMs) {
    return this.waitFor(() => this.provider.synced, timeoutMs, () => `not synced after ${timeoutMs} ms`)
  }

  // Resolves when the text equals `expected`. Length is O(1) and toString() is O(n), so the
  // full comparison runs only when the lengths agree.
  waitText (expected, timeoutMs) {
    return this.waitFor(
      () => this.text.length === expected.length && this.text.toString() === expected,
      timeoutMs,
      () => `text (length ${this.text.length}) did not reach the expected length ${expected.length} in ${timeoutMs} ms`
    )
  }

  destroy () {
    for (const w of this._waiters) clearTimeout(w.timer)
    this._waiters.clear()
    this.provider.destroy()
    this.doc.destroy()
  }
}

// Connect the first client alone and wait for its sync, then the rest together: opening a new
// room from many connections at the same instant is a known hang in pycrdt-websocket 0.16.5,
// and a benchmark should not trip over it (the same order is used for every server).
// With `wave`, the rest connect `wave` at a time, each wave once the previous one synced: a
// thousand stock clients joining at once is a join storm, not the steady state being measured.
export async function connectAll (clients, timeoutMs, wave = 0) {
  clients[0].connect()
  await clients[0].waitSynced(timeoutMs)
  const rest = clients.slice(1)
  const step = wave > 0 ? wave : rest.length
  for (let i = 0; i < rest.length; i += step) {
    const group = rest.slice(i, i + step)
    for (const c of group) c.connect()
    await Promise.all(group.map((c) => c.waitSynced(timeoutMs)))
  }
}

export function loadTrace (path) {
  const trace = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'))
  const patches = []
  for (const txn of trace.txns) for (const p of txn.patches) patches.push(p)
  return { startContent: trace.startContent, endContent: trace.endContent, patches }
}

export function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))
