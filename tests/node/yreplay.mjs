#!/usr/bin/env node
// Replays a stored log in Yjs itself and renders the document at chosen seqs.
//
// stdin: one JSON object {updates: [[seq, base64 v1 update], ...] (in seq order),
//                         checks: [seq, ...], types: {root name: "text"|"xml"|"map"|"array"}}
// stdout: one JSON object {seq: {root name: {json, delta?}}} with every root as Yjs renders
// it (toJSON; toDelta for texts), to compare with what the server serves at that seq.

import * as Y from 'yjs'

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => { input += chunk })
process.stdin.on('end', () => {
  const { updates, checks, types } = JSON.parse(input)
  const wanted = new Set(checks)
  const doc = new Y.Doc()
  const out = {}
  const render = (seq) => {
    const roots = {}
    for (const [name, kind] of Object.entries(types)) {
      if (kind === 'text') {
        const t = doc.getText(name)
        roots[name] = { json: t.toJSON(), delta: t.toDelta() }
      } else if (kind === 'xml') roots[name] = { json: doc.getXmlFragment(name).toJSON(), children: tree(doc.getXmlFragment(name)) }
      else if (kind === 'map') roots[name] = { json: doc.getMap(name).toJSON() }
      else if (kind === 'array') roots[name] = { json: doc.getArray(name).toJSON() }
    }
    out[seq] = roots
  }
  if (wanted.has(0)) render(0)
  for (const [seq, b64] of updates) {
    Y.applyUpdate(doc, Buffer.from(b64, 'base64'))
    if (wanted.has(seq)) render(seq)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
})

// An XML fragment as a tree: elements with tag, attributes and children; texts as deltas.
function tree (fragment) {
  return fragment.toArray().map((node) => node instanceof Y.XmlText
    ? { delta: node.toDelta() }
    : { tag: node.nodeName, attributes: node.getAttributes(), children: tree(node) })
}
