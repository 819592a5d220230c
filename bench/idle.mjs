// Idle connections: `docs` documents with `per-doc` stock clients each, connected in waves and
// synced, then held open (presence on, as stock clients keep it) until stdin closes or `hold`
// seconds pass.
//
//   node idle.mjs --url ws://127.0.0.1:P/ws --docs 2000 --per-doc 2 [--wave 200] [--hold 600]
//
// Prints one JSON line when every client has synced ({"ready": true, ...}), and one more when
// it ends, with the count of connections that closed meanwhile (each one a failure).

import { performance } from 'node:perf_hooks'
import { Client, emit, parseArgs } from './clients.mjs'

const opts = parseArgs(process.argv.slice(2), {
  url: '', docs: 2000, per_doc: 2, wave: 200, hold: 600, timeout: 120, prefix: 'idle', deflate: true
})
if (!opts.url) throw new Error('--url is required')

const clients = []
for (let d = 0; d < opts.docs; d++) {
  for (let k = 0; k < opts.per_doc; k++) {
    clients.push(new Client(opts.url, `${opts.prefix}-${d}`, { deflate: opts.deflate, name: `d${d}c${k}` }))
  }
}
let code = 1
try {
  const t0 = performance.now()
  for (let i = 0; i < clients.length; i += opts.wave) {
    const group = clients.slice(i, i + opts.wave)
    for (const c of group) c.connect()
    await Promise.all(group.map((c) => c.waitSynced(opts.timeout * 1000)))
  }
  emit({ ready: true, connections: clients.length, connect_s: (performance.now() - t0) / 1000 })
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, opts.hold * 1000)
    process.stdin.on('end', () => { clearTimeout(timer); resolve() })
    process.stdin.resume()
  })
  const closes = clients.reduce((n, c) => n + c.closes.length, 0)
  emit({ ok: closes === 0, closes })
  code = closes === 0 ? 0 : 1
} catch (e) {
  emit({ ok: false, error: String(e && e.message ? e.message : e) })
} finally {
  for (const c of clients) c.destroy()
  process.exit(code)
}
