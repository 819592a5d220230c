// Fan-out latency: W writers and R readers on one document, each writer sending `rate` updates
// per second for `seconds`; every reader timestamps every update it receives.
//
//   node fanout.mjs --url ws://127.0.0.1:P/ws --doc D [--writers 5] [--readers 20] [--rate 20]
//                   [--seconds 20] [--drain 10] [--no-deflate] [--presence 1] [--connect-timeout 30]
//                   [--connect-wave N]
//
// Each update inserts a token `[w<writer>:<counter>]` at the end of the text, in its own
// transaction (one update message). Send times are kept here, keyed by the token; a reader parses
// the tokens out of each change it observes. All clients share this process and its clock, so a
// delivery's latency is receive time minus send time with no clock skew. Writers send on an
// absolute schedule (no drift), staggered evenly within the period. Prints one JSON line.
// Every stock provider shares presence (an empty state) and renews it every 15 s; with
// `--presence 1` each also names its user, as an editor does.

import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { Client, connectAll, emit, parseArgs, sleep } from './clients.mjs'

const opts = parseArgs(process.argv.slice(2), {
  url: '', doc: '', writers: 5, readers: 20, rate: 20, seconds: 20, drain: 10, deflate: true,
  presence: 0, connect_timeout: 30, connect_wave: 0
})
if (!opts.url || !opts.doc) throw new Error('--url and --doc are required')

const writers = []
const readers = []
for (let i = 0; i < opts.writers; i++) writers.push(new Client(opts.url, opts.doc, { deflate: opts.deflate, name: `writer${i}` }))
for (let i = 0; i < opts.readers; i++) readers.push(new Client(opts.url, opts.doc, { deflate: opts.deflate, name: `reader${i}` }))
const clients = [...writers, ...readers]
if (opts.presence) {
  for (const c of clients) c.provider.awareness.setLocalStateField('user', { name: c.name, color: '#30bced' })
}

const sentAt = new Map() // token -> send time (ms, performance.now())
const latencies = [] // ms, one per (update, reader) delivery
const sentSecond = [] // for each delivery, the second of the run its update was sent in
let runStart = 0
let unknownTokens = 0
let duplicates = 0
const TOKEN = /\[w(\d+):(\d+)\]/g

for (const r of readers) {
  const seen = new Set()
  r.text.observe((event) => {
    const now = performance.now()
    for (const op of event.delta) {
      if (typeof op.insert !== 'string') continue
      for (const m of op.insert.matchAll(TOKEN)) {
        const t = sentAt.get(m[0])
        if (t === undefined) { unknownTokens++; continue }
        if (seen.has(m[0])) { duplicates++; continue }
        seen.add(m[0])
        latencies.push(now - t)
        sentSecond.push(Math.floor((t - runStart) / 1000))
      }
    }
  })
}

function percentile (sorted, q) {
  if (sorted.length === 0) return null
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[idx]
}

const result = {
  ok: false, writers: opts.writers, readers: opts.readers, rate: opts.rate, seconds: opts.seconds, deflate_offered: opts.deflate
}
const lag = monitorEventLoopDelay({ resolution: 10 })
try {
  const tc = performance.now()
  await connectAll(clients, opts.connect_timeout * 1000, opts.connect_wave)
  result.connect_s = (performance.now() - tc) / 1000
  result.extensions = clients[0].extensions
  if (opts.presence) {
    // Start once every client sees everyone's presence: the join's awareness burst (each
    // newcomer's state to everyone) is over, and what follows is the steady state.
    const tp = performance.now()
    await Promise.all(clients.map((c) => c.waitFor(
      () => c.provider.awareness.getStates().size >= clients.length, opts.connect_timeout * 1000,
      () => `sees ${c.provider.awareness.getStates().size} of ${clients.length} presences`)))
    result.presence_settled_s = (performance.now() - tp) / 1000
  }
  await sleep(200)

  const period = 1000 / opts.rate
  const perWriter = Math.floor(opts.seconds * opts.rate)
  const start = performance.now() + 50
  runStart = start
  lag.enable()
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  let lateSends = 0
  const writing = writers.map(async (w, wi) => {
    const offset = (wi * period) / opts.writers
    for (let n = 0; n < perWriter; n++) {
      const due = start + offset + n * period
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      else if (wait < -period) lateSends++
      const token = `[w${wi}:${n}]`
      sentAt.set(token, performance.now())
      w.doc.transact(() => w.text.insert(w.text.length, token))
    }
  })
  await Promise.all(writing)
  const sendEnd = performance.now()
  const expected = perWriter * opts.writers * opts.readers
  const drainDeadline = sendEnd + opts.drain * 1000
  while (latencies.length < expected && performance.now() < drainDeadline) await sleep(20)
  const cpu = process.cpuUsage(cpu0)
  const reconnects = clients.reduce((n, c) => n + c.closes.length, 0)
  const elu = performance.eventLoopUtilization(elu0).utilization
  lag.disable()

  const sorted = Float64Array.from(latencies).sort()
  // p99 of the updates sent in each second: shows whether a server falls further behind as the
  // run goes on (a queue building up) or has isolated stalls.
  const bySecond = []
  for (let i = 0; i < latencies.length; i++) {
    const sec = Math.max(0, sentSecond[i])
    ;(bySecond[sec] ||= []).push(latencies[i])
  }
  const p99BySecond = bySecond.map((l) => l ? Math.round(percentile(Float64Array.from(l).sort(), 0.99)) : null)
  const sum = latencies.reduce((a, b) => a + b, 0)
  // All clients must also agree on the final text.
  const finalText = writers[0].text.toString()
  const agree = clients.every((c) => c.text.toString() === finalText)
  Object.assign(result, {
    ok: latencies.length === expected && agree,
    updates_sent: perWriter * opts.writers,
    deliveries_expected: expected,
    deliveries: latencies.length,
    missing: expected - latencies.length,
    duplicates,
    unknown_tokens: unknownTokens,
    texts_agree: agree,
    send_s: (sendEnd - start) / 1000,
    late_sends: lateSends,
    p50_ms: percentile(sorted, 0.5),
    p90_ms: percentile(sorted, 0.9),
    p99_ms: percentile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    mean_ms: latencies.length ? sum / latencies.length : null,
    p99_by_second_ms: p99BySecond,
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    connection_closes: reconnects,
    client_event_loop_utilization: elu,
    client_loop_delay_p99_ms: lag.percentile(99) / 1e6
  })
  if (!result.ok) result.error = !agree ? 'clients disagree on the final text' : `${result.missing} deliveries missing after ${opts.drain} s`
} catch (e) {
  result.error = String(e && e.message ? e.message : e)
} finally {
  result.closes = clients.map((c) => c.closes).filter((l) => l.length)
  emit(result)
  for (const c of clients) c.destroy()
  process.exit(result.ok ? 0 : 1)
}
