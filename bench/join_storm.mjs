// Join storm: N stock clients open one document at the same instant; each is timed from its
// connect() to holding the whole text.
//
//   node join_storm.mjs --url ws://127.0.0.1:P/ws --doc D --clients 150 --expect-length L
//                       [--load state.bin] [--timeout 120] [--no-deflate]
//
// With `--load`, a loader client first puts that Yjs update (the whole document) into the
// server and stays connected, so the document is warm (in memory) during the storm: that is
// how @y/websocket-server, which keeps no document without a client, is measured. Every client
// must reach the expected text length and all texts must agree. Prints one JSON line.

import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import { Client, emit, parseArgs, sleep } from './clients.mjs'

const opts = parseArgs(process.argv.slice(2), {
  url: '', doc: '', clients: 150, expect_length: 0, load: '', timeout: 120, deflate: true
})
if (!opts.url || !opts.doc || !opts.expect_length) throw new Error('--url, --doc and --expect-length are required')

function percentile (sorted, q) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

const result = { ok: false, clients: opts.clients, warm_loader: Boolean(opts.load) }
const all = []
try {
  if (opts.load) {
    const loader = new Client(opts.url, opts.doc, { deflate: opts.deflate, name: 'loader' })
    all.push(loader)
    loader.connect()
    await loader.waitSynced(opts.timeout * 1000)
    Y.applyUpdate(loader.doc, readFileSync(opts.load))
    // The loader's own update went out; the server holds it once a fresh client sees it all.
    const probe = new Client(opts.url, opts.doc, { deflate: opts.deflate, name: 'probe' })
    probe.connect()
    await probe.waitFor(() => probe.text.length === opts.expect_length, opts.timeout * 1000,
      () => `probe: ${probe.text.length} of ${opts.expect_length} characters`)
    probe.destroy()
    await sleep(500)
  }
  const clients = []
  for (let i = 0; i < opts.clients; i++) clients.push(new Client(opts.url, opts.doc, { deflate: opts.deflate, name: `joiner${i}` }))
  all.push(...clients)
  const times = new Array(clients.length)
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  for (const c of clients) c.connect()
  await Promise.all(clients.map((c, i) => c.waitFor(
    () => c.provider.synced && c.text.length === opts.expect_length, opts.timeout * 1000,
    () => `${c.text.length} of ${opts.expect_length} characters, synced=${c.provider.synced}`
  ).then(() => { times[i] = (performance.now() - start) / 1000 })))
  const cpu = process.cpuUsage(cpu0)
  const text = clients[0].text.toString()
  const agree = clients.every((c) => c.text.toString() === text)
  const sorted = Float64Array.from(times).sort()
  Object.assign(result, {
    ok: agree,
    texts_agree: agree,
    p50_s: percentile(sorted, 0.5),
    p90_s: percentile(sorted, 0.9),
    p99_s: percentile(sorted, 0.99),
    max_s: sorted[sorted.length - 1],
    first_s: sorted[0],
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
    reconnects: clients.reduce((n, c) => n + c.closes.length, 0)
  })
  if (!agree) result.error = 'clients disagree on the text'
} catch (e) {
  result.error = String(e && e.message ? e.message : e)
} finally {
  emit(result)
  for (const c of all) c.destroy()
  process.exit(result.ok ? 0 : 1)
}
