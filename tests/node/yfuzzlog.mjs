#!/usr/bin/env node
// A random Yjs log, as a relay server would store it: several Y.Docs edit formatted text
// (Quill-style Y.Text with embeds), an XML fragment with formatted XmlTexts and attributes,
// and a plain text, concurrently; their updates reach the log late, merged, or out of their
// own order (a gap in a client's clocks, as when a reconnecting client's new keystrokes
// arrive before its offline edits), and each client catches up from the log at random times.
// Typed Y.Texts clean up their formatting after remote changes, as real editors' do.
//
//   node yfuzzlog.mjs '{"seed": 1, "clients": 3, "steps": 400}'
//
// stdout: one JSON line {updates: [[seq, base64 v1 update], ...], types: {root: kind}},
// the input of yreplay.mjs.

import * as Y from 'yjs'

const cfg = JSON.parse(process.argv[2])
let seed = cfg.seed ?? 1
const rand = () => { // mulberry32: reproducible from the seed
  seed |= 0; seed = seed + 0x6D2B79F5 | 0
  let t = Math.imul(seed ^ seed >>> 15, 1 | seed)
  t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
  return ((t ^ t >>> 14) >>> 0) / 4294967296
}
const int = (n) => Math.floor(rand() * n)
const pick = (xs) => xs[int(xs.length)]
const WORDS = ['alpha', 'beta', ' ', 'é', 'ok', '\n', 'x', 'gamma']
const word = () => Array.from({ length: 1 + int(2) }, () => pick(WORDS)).join('')
const MARKS = [{ bold: true }, { italic: true }, { bold: null }, { italic: null },
  { link: 'https://e.x/' + 1 }, { link: null }, { bold: true, italic: true }]
const attrs = () => rand() < 0.5 ? {} : pick(MARKS)

function formatted (text) {
  const n = text.length
  const r = rand()
  if (r < 0.4 || n === 0) text.insert(int(n + 1), word(), attrs())
  else if (r < 0.5) text.insertEmbed(int(n + 1), { formula: 'x^' + int(9) }, attrs())
  else if (r < 0.8) {
    const at = int(n)
    text.format(at, 1 + int(Math.min(8, n - at)), pick(MARKS))
  } else {
    const at = int(n)
    text.delete(at, 1 + int(Math.min(4, n - at)))
  }
}

function xml (doc) {
  const fragment = doc.getXmlFragment('prosemirror')
  const blocks = fragment.toArray()
  const r = rand()
  if (blocks.length === 0 || r < 0.15) {
    const p = new Y.XmlElement(pick(['paragraph', 'heading', 'Blockquote']))
    p.insert(0, [new Y.XmlText()])
    fragment.insert(int(blocks.length + 1), [p])
    p.get(0).insert(0, word(), attrs())
  } else if (r < 0.2) {
    fragment.delete(int(blocks.length), 1)
  } else if (r < 0.3) {
    pick(blocks).setAttribute('level', String(1 + int(3)))
  } else {
    const block = pick(blocks)
    const text = block.get(0)
    if (text instanceof Y.XmlText) formatted(text)
  }
}

function plain (text) {
  const n = text.length
  if (n === 0 || rand() < 0.7) text.insert(int(n + 1), word())
  else { const at = int(n); text.delete(at, 1 + int(Math.min(3, n - at))) }
}

const log = []
const clients = Array.from({ length: cfg.clients ?? 3 }, (_, i) => {
  const doc = new Y.Doc()
  doc.clientID = 1 + int(2 ** 31) // reproducible from the seed
  const c = { doc, outbox: [], seen: 0 }
  doc.on('update', (update, origin) => { if (origin !== 'log') c.outbox.push(update) })
  doc.getText('quill'); doc.getText('content'); doc.getXmlFragment('prosemirror')
  return c
})

function deliver (c) {
  if (c.outbox.length === 0) return
  const r = rand()
  if (r < 0.1) { // out of the client's order: a gap in its clocks
    log.push(c.outbox.splice(c.outbox.length - 1, 1)[0])
  } else if (r < 0.2) { // a reconnect's sync step 2: everything at once
    log.push(Y.mergeUpdates(c.outbox.splice(0)))
  } else log.push(c.outbox.shift())
}

function catchUp (c) {
  Y.transact(c.doc, () => {
    for (; c.seen < log.length; c.seen++) Y.applyUpdate(c.doc, log[c.seen], 'log')
  }, 'log')
}

for (let step = 0; step < (cfg.steps ?? 400); step++) {
  const c = pick(clients)
  const r = rand()
  if (r < 0.55) {
    const which = rand()
    if (which < 0.5) formatted(c.doc.getText('quill'))
    else if (which < 0.85) xml(c.doc)
    else plain(c.doc.getText('content'))
  } else if (r < 0.8) deliver(c)
  else catchUp(c)
}
for (const c of clients) while (c.outbox.length) deliver(c)

process.stdout.write(JSON.stringify({
  updates: log.map((u, i) => [i + 1, Buffer.from(u).toString('base64')]),
  types: { quill: 'text', content: 'text', prosemirror: 'xml' }
}) + '\n')
