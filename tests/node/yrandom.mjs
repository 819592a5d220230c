#!/usr/bin/env node
// Random operations on every Yjs shape through a real server, in the spirit of Yjs's own
// applyRandomTests: several stock WebsocketProviders (one Y.Doc each, BroadcastChannel off)
// make random edits for a bounded time and count, with random disconnects:
//
//   content     Y.Text: plain inserts and deletes, emoji included (never cut in half)
//   quill       Y.Text: formatted inserts, embeds, formatting, deletes
//   prosemirror Y.XmlFragment: real ProseMirror transactions (prosemirror-state) written by
//               y-prosemirror's updateYFragment, as its editor binding does
//   meta        Y.Map: JSON objects (several keys), numbers, strings, deletes
//   items       Y.Array: JSON values inserted and deleted
//
// Then every client reconnects, they must converge, and a newcomer must receive the same.
//
//   node yrandom.mjs '{"url": "ws://127.0.0.1:PORT/ws", "doc": "d", "clients": 3,
//                      "seconds": 15, "maxOps": 3000, "seed": 1}'
//
// One JSON line on stdout: {ok, ops, converged, newcomer, roots, order} or {ok: false, error}.
// `roots` is every root as Yjs renders it (toJSON; and toDelta for texts), `order` the
// newcomer's JSON.stringify of the map, to compare key order byte for byte.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { updateYFragment, yXmlFragmentToProseMirrorRootNode } from 'y-prosemirror'
import { schema } from 'prosemirror-schema-basic'
import { EditorState, TextSelection } from 'prosemirror-state'

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
const WORDS = ['alpha', 'beta', 'gamma', ' ', ' ', 'é', '😀', 'ok', '\n', 'x']
const word = () => Array.from({ length: 1 + int(3) }, () => pick(WORDS)).join('')
// Formatted text and ProseMirror get no emoji: their positions here are not pair-aware, and a
// cut pair is refused (4423), which is tested on its own.
const bmpWord = () => word().replace(/😀/g, 'ü')

// A UTF-16 index that does not fall between the halves of a pair.
function safeIndex (str, index) {
  const c = str.charCodeAt(index - 1)
  return (c >= 0xD800 && c <= 0xDBFF) ? index - 1 : index
}

function client (name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(cfg.url, cfg.doc, doc, {
    WebSocketPolyfill: WebSocket, disableBc: true, params: { name }
  })
  return { doc, provider, name }
}

const texts = {
  content (doc) {
    const t = doc.getText('content')
    const s = t.toString()
    if (s.length > 0 && rand() < 0.35) {
      const a = safeIndex(s, int(s.length))
      const b = safeIndex(s, Math.min(s.length, a + 1 + int(6)))
      if (b > a) t.delete(a, b - a)
    } else {
      t.insert(safeIndex(s, int(s.length + 1)), word())
    }
  },
  quill (doc) {
    const t = doc.getText('quill')
    const len = t.length
    const s = t.toString() // embeds are not in it, so positions are only mostly safe
    const at = Math.min(len, safeIndex(s, int(len + 1)))
    const r = rand()
    if (r < 0.3) t.insert(at, bmpWord(), pick([{ bold: true }, { italic: true }, {}, { link: 'https://e.x/' + int(9) }]))
    else if (r < 0.45) t.insertEmbed(at, pick([{ image: 'i' + int(5) + '.png' }, { formula: 'x^' + int(9) }]), rand() < 0.5 ? { bold: true } : {})
    else if (r < 0.7 && len > 0) t.format(Math.min(at, len - 1), 1 + int(4), pick([{ bold: true }, { bold: null }, { italic: true }, { italic: null, bold: null }]))
    else if (len > 0) t.delete(Math.min(at, len - 1), 1)
  },
  prosemirror (doc) {
    const frag = doc.getXmlFragment('prosemirror')
    let pmDoc
    try {
      pmDoc = yXmlFragmentToProseMirrorRootNode(frag, schema)
    } catch (e) {
      pmDoc = schema.topNodeType.createAndFill()
    }
    const state = EditorState.create({ schema, doc: pmDoc })
    const size = state.doc.content.size
    let tr = state.tr
    const pos = () => Math.max(1, Math.min(size - 1, 1 + int(Math.max(1, size - 1))))
    const r = rand()
    try {
      if (r < 0.45 || size <= 2) {
        const p = pos()
        tr = tr.setSelection(TextSelection.create(tr.doc, p)).insertText(bmpWord().replace(/\n/g, ' '))
      } else if (r < 0.6) {
        const p = pos(); tr = tr.addMark(p, Math.min(size - 1, p + 1 + int(5)), pick([schema.marks.strong, schema.marks.em]).create())
      } else if (r < 0.7) {
        tr = tr.split(pos())
      } else if (r < 0.9) {
        const p = pos(); tr = tr.setBlockType(p, p, pick([schema.nodes.heading, schema.nodes.paragraph]), { level: 1 + int(3) })
      } else {
        const p = pos(); tr = tr.delete(p, Math.min(size - 1, p + 1 + int(6)))
      }
    } catch (e) {
      return // a transaction ProseMirror refuses at that spot: no edit
    }
    updateYFragment(doc, frag, tr.doc, { mapping: new Map(), isOMark: new Map() })
  },
  meta (doc) {
    const m = doc.getMap('meta')
    const key = 'k' + int(6)
    if (rand() < 0.2) m.delete(key)
    else m.set(key, pick([
      () => ({ zeta: int(9), alpha: 'a', mid: [1, { y: 2, b: 3 }], beta: null }),
      () => int(1000),
      () => word(),
      () => ({ q: true, p: { z: 1, a: 2, m: 3 } })
    ])())
  },
  items (doc) {
    const a = doc.getArray('items')
    if (a.length > 0 && rand() < 0.3) a.delete(int(a.length), 1)
    else a.insert(int(a.length + 1), [pick([int(99), word(), { n: int(9), c: 'd', b: [1] }])])
  }
}
const KINDS = Object.keys(texts)

function render (doc) {
  const out = {}
  out.content = { json: doc.getText('content').toJSON(), delta: doc.getText('content').toDelta() }
  out.quill = { json: doc.getText('quill').toJSON(), delta: doc.getText('quill').toDelta() }
  out.prosemirror = { json: doc.getXmlFragment('prosemirror').toJSON(), children: tree(doc.getXmlFragment('prosemirror')) }
  out.meta = { json: doc.getMap('meta').toJSON() }
  out.items = { json: doc.getArray('items').toJSON() }
  return out
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitFor (cond, seconds, what) {
  const end = Date.now() + seconds * 1000
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`)
    await sleep(50)
  }
}
const sv = (doc) => Buffer.from(Y.encodeStateVector(doc)).toString('base64')

async function main () {
  const clients = Array.from({ length: cfg.clients ?? 3 }, (_, i) => client('r' + i))
  await waitFor(() => clients.every((c) => c.provider.synced), 15, () => 'clients not synced')
  const end = Date.now() + (cfg.seconds ?? 15) * 1000
  let ops = 0
  const closes = []
  for (const c of clients) c.provider.on('connection-close', (e) => { if (e && e.code >= 4000) closes.push(e.code) })
  while (Date.now() < end && ops < (cfg.maxOps ?? 3000)) {
    const c = pick(clients)
    if (rand() < 0.02) {
      if (c.provider.wsconnected || c.provider.wsconnecting) c.provider.disconnect()
      else c.provider.connect()
    } else {
      c.doc.transact(() => texts[pick(KINDS)](c.doc))
      ops++
    }
    if (ops % 20 === 0) await sleep(5) // let frames flow
  }
  for (const c of clients) if (!c.provider.wsconnected && !c.provider.wsconnecting) c.provider.connect()
  // Values compared with map keys sorted: a client that reconnected got the others' JSON
  // objects through the server's sync step 2 (key order is reported apart, in `exact`).
  const same = () => {
    const a = JSON.stringify(sortKeys(render(clients[0].doc)))
    return clients.every((c) => c.provider.synced && sv(c.doc) === sv(clients[0].doc) && JSON.stringify(sortKeys(render(c.doc))) === a)
  }
  const describe = () => `clients did not converge (closes: ${closes}; synced ${clients.map((c) => c.provider.synced)}; ` +
    `state vectors equal ${clients.map((c) => sv(c.doc) === sv(clients[0].doc))}; roots differing ${
      Object.keys(render(clients[0].doc)).filter((k) => clients.some((c) => JSON.stringify(sortKeys(render(c.doc)[k])) !== JSON.stringify(sortKeys(render(clients[0].doc)[k]))))})`
  await waitFor(same, 30, describe)
  const exact = clients.every((c) => JSON.stringify(mapKeysSorted(render(c.doc))) === JSON.stringify(mapKeysSorted(render(clients[0].doc))))
  const newcomer = client('newcomer')
  await waitFor(() => newcomer.provider.synced && sv(newcomer.doc) === sv(clients[0].doc), 15, () => 'newcomer did not sync')
  const roots = render(clients[0].doc)
  const newcomerRoots = render(newcomer.doc)
  const result = {
    ok: true,
    ops,
    closes,
    converged: true,
    exact,
    // The JSON values byte for byte (their keys in their writers' order); only the Y.Map's
    // own keys are sorted: Yjs iterates them in the order they were integrated, which
    // differs between any two clients that received the edits in different orders.
    newcomer: JSON.stringify(mapKeysSorted(newcomerRoots)) === JSON.stringify(mapKeysSorted(roots)),
    newcomerSameValues: JSON.stringify(sortKeys(newcomerRoots)) === JSON.stringify(sortKeys(roots)),
    roots,
    newcomerDiff: Object.keys(roots).filter((k) => JSON.stringify(mapKeysSorted(newcomerRoots)[k]) !== JSON.stringify(mapKeysSorted(roots)[k]))
      .map((k) => [k, JSON.stringify(mapKeysSorted(roots)[k]), JSON.stringify(mapKeysSorted(newcomerRoots)[k])]),
    state: Buffer.from(Y.encodeStateAsUpdate(clients[0].doc)).toString('base64')
  }
  for (const c of [...clients, newcomer]) c.provider.destroy()
  // Exit only once the line is written: stdout to a pipe is asynchronous.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0))
}

function mapKeysSorted (roots) {
  const json = roots.meta.json
  return { ...roots, meta: { json: Object.fromEntries(Object.keys(json).sort().map((k) => [k, json[k]])) } }
}

function sortKeys (v) {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]))
  return v
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }) + '\n',
    () => process.exit(1))
})

// An XML fragment as a tree: elements with tag, attributes and children; texts as deltas.
function tree (fragment) {
  return fragment.toArray().map((node) => node instanceof Y.XmlText
    ? { delta: node.toDelta() }
    : { tag: node.nodeName, attributes: node.getAttributes(), children: tree(node) })
}
