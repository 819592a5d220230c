// Replay a sequential editing trace through K stock y-websocket clients, one update message per
// patch (one transaction per patch, as an editor sends keystrokes), and time it to convergence.
//
//   node replay.mjs --url ws://127.0.0.1:P/ws --doc D --trace T.json.gz [--patches N] [--k K]
//                   [--chunk C] [--timeout S] [--no-deflate]
//
// The trace is sequential: each position is relative to the document after every earlier patch.
// So it is dealt in chunks of C patches, round-robin over the K writers, and a writer starts its
// chunk only once its own text equals the expected text before that chunk, i.e. once the server
// has relayed every earlier chunk to it. With K=1 a passive observer client is added, so that
// convergence means the server relayed everything (a lone writer converges with itself at once).
// The clock runs from "every client synced" to "every client's text equals the final text".
// Prints one JSON line.

import * as Y from 'yjs'
import { performance } from 'node:perf_hooks'
import { Client, connectAll, emit, loadTrace, parseArgs, yieldToLoop, sleep } from './clients.mjs'

const opts = parseArgs(process.argv.slice(2), {
  url: '', doc: '', trace: '', patches: 0, k: 1, chunk: 2000, timeout: 900, deflate: true,
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
if (patches.length === trace.patches.length && finalText !== trace.endContent) {
  throw new Error('replaying the trace locally does not give its endContent')
}

const deadline = performance.now() + opts.timeout * 1000
const left = () => Math.max(1, deadline - performance.now())

const writers = []
for (let i = 0; i < opts.k; i++) writers.push(new Client(opts.url, opts.doc, { deflate: opts.deflate, name: `writer${i}` }))
const observers = opts.k === 1 ? [new Client(opts.url, opts.doc, { deflate: opts.deflate, name: 'observer' })] : []
const clients = [...writers, ...observers]

let sent = 0
async function drain (c) {
  while (c.bufferedAmount > opts.high_water / 4) {
    if (performance.now() > deadline) throw new Error(`${c.name}: socket buffer never drained`)
    await sleep(1)
  }
}

async function writeChunks (c, i) {
  for (let j = i; j < nChunks; j += opts.k) {
    await c.waitText(expected[j], left())
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
  const done = clients.map((c, idx) => c.waitText(finalText, left()).then(() => {
    converged[idx] = (performance.now() - t0) / 1000
  }))
  let sendDone = null
  const writing = Promise.all(writers.map((c, i) => writeChunks(c, i))).then(() => {
    sendDone = (performance.now() - t0) / 1000
  })
  await Promise.all([writing, ...done])
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
    client_event_loop_utilization: performance.eventLoopUtilization(elu0).utilization
  })
} catch (e) {
  result.error = String(e && e.message ? e.message : e)
  result.elapsed_s = t0 ? (performance.now() - t0) / 1000 : null
  result.sent = sent
  result.lengths = clients.map((c) => c.text.length)
  result.expected_length = finalText.length
} finally {
  result.closes = clients.map((c) => c.closes).filter((l) => l.length)
  emit(result)
  for (const c of clients) c.destroy()
  process.exit(result.ok ? 0 : 1)
}
