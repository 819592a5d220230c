// Replay a sequential editing trace through K stock y-websocket clients, one update message per
// patch (one transaction per patch, as an editor sends keystrokes), and time it to convergence.
//
//   node replay.mjs --url ws://127.0.0.1:P/ws --doc D --trace T.json.gz [--patches N] [--k K]
//                   [--chunk C] [--timeout S] [--no-deflate]
//
// The trace is sequential: each position is relative to the document after every earlier patch.
// So it is dealt in chunks of C patches, round-robin over the K writers, and a writer starts its
// chunk only once it has every earlier patch and its text equals the expected text before that
// chunk. Text equality alone is not enough: a chunk that ends by deleting and retyping a
// character passes through the expected text early, and a writer starting then edits
// concurrently with the last patches of the previous chunk (seen here: the replicas then agree
// on a text that is not the trace's). "Has every earlier patch" is read from the client's own
// state (see `progress`), which only grows. With K=1 a passive observer client is added, so that
// convergence means the server relayed everything (a lone writer converges with itself at once).
// The clock runs from "every client synced" to "every client's text equals the final text".
//
// The load is a closed loop: a writer may run at most `window` patches ahead of the slowest other
// client (what that client has integrated, read from its state vector and text length), so no
// server is measured with an unbounded queue in front of it. `--window 0` is an open-loop flood.
// Prints one JSON line.

import * as Y from 'yjs'
import { performance } from 'node:perf_hooks'
import { Client, connectAll, emit, loadTrace, parseArgs, yieldToLoop, sleep } from './clients.mjs'

const opts = parseArgs(process.argv.slice(2), {
  url: '', doc: '', trace: '', patches: 0, k: 1, chunk: 2000, timeout: 900, deflate: true,
  // give up when no client's document has changed for this long (a lost update never arrives)
  stall: 30,
  window: 4000,
  // stop generating while this many bytes wait in a client's socket buffer
  high_water: 1 << 20
})
if (!opts.url || !opts.doc || !opts.trace) throw new Error('--url, --doc and --trace are required')

const trace = loadTrace(opts.trace)
if (trace.startContent !== '') throw new Error('traces with a non-empty startContent are not supported')
const patches = opts.patches > 0 ? trace.patches.slice(0, opts.patches) : trace.patches
const C = opts.chunk
const nChunks = Math.ceil(patches.length / C)

// Expected text before each chunk (and at the end), computed on a local Y.Doc.
const expected = []
{
  const d = new Y.Doc()
  const t = d.getText('content')
  for (let j = 0; j < nChunks; j++) {
    expected.push(t.toString())
    d.transact(() => {
      for (const [pos, del, ins] of patches.slice(j * C, (j + 1) * C)) {
        if (del > 0) t.delete(pos, del)
        if (ins) t.insert(pos, ins)
      }
    })
  }
  expected.push(t.toString())
  d.destroy()
}
const finalText = expected[nChunks]

// Work done by patches 0..p-1, in Yjs items: each inserted character is one item (one clock
// tick of its author), each deleted character one more. A client's own measure of the same
// (`progress`) is monotonic whatever order updates arrive in.
const cum = new Float64Array(patches.length + 1)
for (let p = 0; p < patches.length; p++) {
  const [, del, ins] = patches[p]
  cum[p + 1] = cum[p] + del + (ins ? ins.length : 0)
}
function progress (c) {
  let inserted = 0
  for (const id of c.doc.store.clients.keys()) inserted += Y.getState(c.doc.store, id)
  return 2 * inserted - c.text.length // inserted + deleted
}
if (patches.length === trace.patches.length && finalText !== trace.endContent) {
  throw new Error('replaying the trace locally does not give its endContent')
}

const deadline = performance.now() + opts.timeout * 1000
const left = () => Math.max(1, deadline - performance.now())

const writers = []
for (let i = 0; i < opts.k; i++) writers.push(new Client(opts.url, opts.doc, { deflate: opts.deflate, name: `writer${i}` }))
const observers = opts.k === 1 ? [new Client(opts.url, opts.doc, { deflate: opts.deflate, name: 'observer' })] : []
const clients = [...writers, ...observers]

let lastProgress = performance.now()
// 'update' fires only for transactions that change something (an empty sync step 2 after a
// reconnect does not count as progress).
for (const c of clients) c.doc.on('update', () => { lastProgress = performance.now() })
let watchdog = null
const stalled = new Promise((resolve, reject) => {
  watchdog = setInterval(() => {
    if (performance.now() - lastProgress > opts.stall * 1000) {
      reject(new Error(`stalled: no client's document changed for ${opts.stall} s`))
    }
  }, 1000)
})
stalled.catch(() => {}) // handled where it is raced; this only keeps Node from calling it unhandled

let sent = 0
async function drain (c) {
  while (c.bufferedAmount > opts.high_water / 4) {
    if (performance.now() > deadline) throw new Error(`${c.name}: socket buffer never drained`)
    await sleep(1)
  }
}

// Wait until client c has integrated patches 0..p-1, then check its text is the trace's.
async function reach (c, p, text) {
  await c.waitFor(() => progress(c) >= cum[p], left(),
    () => `did not receive patches up to ${p} (progress ${progress(c)} of ${cum[p]})`)
  if (c.text.length !== text.length || c.text.toString() !== text) {
    throw new Error(`${c.name}: has every patch up to ${p}, but its text (length ` +
      `${c.text.length}) differs from the trace's (length ${text.length})`)
  }
}

// Wait until every other client has integrated patches 0..p-window-1.
async function keepWindow (c, p) {
  if (opts.window <= 0 || p < opts.window) return
  const need = cum[p - opts.window]
  for (const o of clients) {
    if (o === c || progress(o) >= need) continue
    windowWaits++
    await o.waitFor(() => progress(o) >= need, left(),
      () => `fell more than ${opts.window} patches behind at patch ${p}`)
  }
}

let windowWaits = 0
async function writeChunks (c, i) {
  for (let j = i; j < nChunks; j += opts.k) {
    await reach(c, j * C, expected[j])
    await keepWindow(c, j * C)
    const end = Math.min((j + 1) * C, patches.length)
    for (let p = j * C; p < end; p++) {
      const [pos, del, ins] = patches[p]
      c.doc.transact(() => {
        if (del > 0) c.text.delete(pos, del)
        if (ins) c.text.insert(pos, ins)
      })
      sent++
      // Let incoming messages in now and then (other clients live in this process), and
      // stop while the socket is backed up rather than queueing the whole trace in memory.
      if ((p & 255) === 255) {
        await keepWindow(c, p + 1)
        if (c.bufferedAmount > opts.high_water) await drain(c)
        else await yieldToLoop()
      }
    }
  }
}

const result = {
  ok: false, patches: patches.length, k: opts.k, chunk: C, clients: clients.length, deflate_offered: opts.deflate
}
let t0 = 0
try {
  const tc = performance.now()
  await connectAll(clients, 30000)
  result.connect_s = (performance.now() - tc) / 1000
  result.extensions = clients[0].extensions
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  t0 = performance.now()
  const converged = clients.map(() => null)
  const done = clients.map((c, idx) => reach(c, patches.length, finalText).then(() => {
    converged[idx] = (performance.now() - t0) / 1000
  }))
  let sendDone = null
  const writing = Promise.all(writers.map((c, i) => writeChunks(c, i))).then(() => {
    sendDone = (performance.now() - t0) / 1000
  })
  lastProgress = performance.now()
  await Promise.race([Promise.all([writing, ...done]), stalled])
  const elapsed = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  Object.assign(result, {
    ok: true,
    elapsed_s: elapsed,
    ops_per_s: patches.length / elapsed,
    send_done_s: sendDone,
    converged_s: converged,
    final_length: finalText.length,
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    window: opts.window,
    window_waits: windowWaits,
    client_event_loop_utilization: performance.eventLoopUtilization(elu0).utilization
  })
} catch (e) {
  result.error = String(e && e.message ? e.message : e)
  result.elapsed_s = t0 ? (performance.now() - t0) / 1000 : null
  result.sent = sent
  result.lengths = clients.map((c) => c.text.length)
  result.progress = clients.map((c) => progress(c))
  result.expected_progress = cum[patches.length]
  result.expected_length = finalText.length
} finally {
  clearInterval(watchdog)
  result.closes = clients.map((c) => c.closes).filter((l) => l.length)
  emit(result)
  for (const c of clients) c.destroy()
  process.exit(result.ok ? 0 : 1)
}
