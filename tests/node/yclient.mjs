#!/usr/bin/env node
// A stock y-websocket client (WebsocketProvider) driven by JSON lines on stdin.
//
//   node yclient.mjs --url ws://127.0.0.1:PORT/ws --doc DOC [--param k=v ...] [--no-deflate]
//
// Each stdin line is a command {"id": N, "op": ..., ...}; each is answered by one stdout line
// {"id": N, "ok": true, ...} or {"id": N, "ok": false, "error": "..."}. Provider events are
// printed as they happen: {"event": "status", ...}, {"event": "connection-close", ...},
// {"event": "synced", ...}. Nothing else is ever written to stdout (diagnostics go to stderr),
// so a driver can parse every line.
//
// BroadcastChannel is disabled (`disableBc: true`): Node 20 has a global BroadcastChannel, and
// two providers in one process would otherwise sync with each other without the server.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as readline from 'node:readline'

function parseArgs (argv) {
  const args = { url: null, doc: null, params: {}, deflate: true }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--url') args.url = next()
    else if (a === '--doc') args.doc = next()
    else if (a === '--param') {
      const kv = next()
      const eq = kv.indexOf('=')
      if (eq < 1) throw new Error(`--param expects k=v, got ${kv}`)
      args.params[kv.slice(0, eq)] = kv.slice(eq + 1)
    } else if (a === '--no-deflate') args.deflate = false
    else throw new Error(`unknown argument ${a}`)
  }
  if (!args.url || !args.doc) throw new Error('usage: yclient.mjs --url URL --doc DOC [--param k=v ...] [--no-deflate]')
  return args
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

let args
try {
  args = parseArgs(process.argv.slice(2))
} catch (e) {
  process.stderr.write(String(e.message) + '\n')
  process.exit(2)
}

// The `ws` client offers permessage-deflate by default, as browsers do. `--no-deflate` makes it
// offer nothing, to measure what compression costs a server.
class NoDeflateWebSocket extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols, { perMessageDeflate: false })
  }
}

const doc = new Y.Doc()
const text = doc.getText('content')
const provider = new WebsocketProvider(args.url, args.doc, doc, {
  WebSocketPolyfill: args.deflate ? WebSocket : NoDeflateWebSocket,
  params: args.params,
  disableBc: true,
  // Connect only once the event handlers below are attached, so `connecting` is reported too.
  connect: false
})

provider.on('status', ({ status }) => {
  const ev = { event: 'status', status }
  if (status === 'connected' && provider.ws) ev.extensions = provider.ws.extensions || ''
  emit(ev)
})
provider.on('connection-close', (event) => {
  // `event` is null when the provider closed the socket itself.
  emit({ event: 'connection-close', code: event ? event.code : null, reason: event ? String(event.reason || '') : null })
})
provider.on('sync', (synced) => emit({ event: 'synced', synced }))

// Waiters re-checked after every document change and every sync-state change.
const waiters = new Set()
function recheck () {
  for (const w of waiters) {
    if (w.check()) {
      waiters.delete(w)
      clearTimeout(w.timer)
      w.resolve()
    }
  }
}
doc.on('afterTransaction', recheck)
provider.on('sync', recheck)
provider.connect()

function waitFor (check, timeoutS, describe) {
  return new Promise((resolve, reject) => {
    if (check()) return resolve()
    const w = { check, resolve }
    w.timer = setTimeout(() => {
      waiters.delete(w)
      reject(new Error(describe()))
    }, Math.max(0, Number(timeoutS ?? 10)) * 1000)
    waiters.add(w)
  })
}

function checkPos (pos, len) {
  if (!Number.isInteger(pos) || pos < 0 || pos + len > text.length) {
    throw new Error(`position ${pos} (+${len}) outside text of length ${text.length}`)
  }
}

let closing = false
async function shutdown () {
  if (closing) return
  closing = true
  for (const w of waiters) clearTimeout(w.timer)
  provider.destroy()
  doc.destroy()
}

const handlers = {
  async wait_synced (cmd) {
    await waitFor(() => provider.synced, cmd.timeout,
      () => `not synced after ${cmd.timeout ?? 10}s (connected: ${provider.wsconnected})`)
    return {}
  },
  async insert (cmd) {
    if (typeof cmd.text !== 'string') throw new Error('insert needs "text"')
    checkPos(cmd.pos, 0)
    doc.transact(() => text.insert(cmd.pos, cmd.text))
    return { length: text.length }
  },
  async delete (cmd) {
    const len = cmd.len ?? 1
    checkPos(cmd.pos, len)
    doc.transact(() => text.delete(cmd.pos, len))
    return { length: text.length }
  },
  async text () {
    return { text: text.toString() }
  },
  async wait_text (cmd) {
    if (typeof cmd.text !== 'string') throw new Error('wait_text needs "text"')
    // Length first: toString() is O(n), length is O(1).
    await waitFor(() => text.length === cmd.text.length && text.toString() === cmd.text, cmd.timeout,
      () => `text not reached after ${cmd.timeout ?? 10}s; current text: ${JSON.stringify(text.toString())}`)
    return { text: cmd.text }
  },
  async apply_patches (cmd) {
    if (!Array.isArray(cmd.patches)) throw new Error('apply_patches needs "patches"')
    let n = 0
    for (const p of cmd.patches) {
      const [pos, del, ins] = p
      checkPos(pos, del)
      // One transaction per patch: the provider sends one update message per transaction.
      doc.transact(() => {
        if (del > 0) text.delete(pos, del)
        if (ins) text.insert(pos, ins)
      })
      n++
    }
    return { applied: n, length: text.length }
  },
  async info () {
    return {
      synced: provider.synced,
      connected: provider.wsconnected,
      extensions: provider.ws ? (provider.ws.extensions || '') : null,
      clientID: doc.clientID,
      length: text.length
    }
  },
  async close () {
    await shutdown()
    return {}
  }
}

async function run (line) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (e) {
    emit({ id: null, ok: false, error: `bad JSON: ${e.message}` })
    return
  }
  const handler = handlers[cmd.op]
  if (!handler) {
    emit({ id: cmd.id ?? null, ok: false, error: `unknown op ${JSON.stringify(cmd.op)}` })
    return
  }
  try {
    const result = await handler(cmd)
    emit({ id: cmd.id ?? null, ok: true, ...result })
  } catch (e) {
    emit({ id: cmd.id ?? null, ok: false, error: String(e && e.message ? e.message : e) })
  }
  if (cmd.op === 'close') {
    // Let stdout drain, then leave; the provider's timers would keep the process alive.
    process.stdout.write('', () => process.exit(0))
  }
}

// Commands run one after another, in the order received, as a person at a keyboard would.
let queue = Promise.resolve()
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  if (!line.trim()) return
  queue = queue.then(() => run(line))
})
// The driver closed stdin: finish the queued commands (each bounded by its timeout), then leave.
rl.on('close', async () => {
  await queue
  await shutdown()
  process.stdout.write('', () => process.exit(0))
})
