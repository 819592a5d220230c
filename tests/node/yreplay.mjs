#!/usr/bin/env node
// Replays a stored log in Yjs itself and renders the document at chosen seqs.
//
// stdin: one JSON object {updates: [[seq, base64 v1 update], ...] (in seq order),
//                         checks: [seq, ...], types: {root name: "text"|"xml"|"map"|"array"}}
// stdout: one JSON object {seq: {root name: {json, delta?}}} with every root as Yjs renders
// it (toJSON; toDelta for texts), to compare with what the server serves at that seq.
// Or {batch: [such objects]}, answered {batch: [such outputs, or {error}]}: several logs,
// one process.

import * as Y from 'yjs'

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => { input += chunk })
process.stdin.on('end', () => {
  const job = JSON.parse(input)
  // {batch: [job, ...]} replays several logs in one process: {batch: [output, ...]}.
  // In a batch, a log Yjs cannot read (a test that stored a broken update on purpose) is
  // answered {error} and the others still replayed.
  const out = job.batch ? { batch: job.batch.map(replayOrError) } : replay(job)
  process.stdout.write(JSON.stringify(out) + '\n')
})

function replayOrError (job) {
  try {
    return replay(job)
  } catch (error) {
    return { error: String(error) }
  }
}

function replay ({ updates, checks, types }) {
  const wanted = new Set(checks)
  const doc = new Y.Doc()
  const out = {}
  // Rendered from a copy: a Y.Text that is typed while remote updates arrive cleans up its
  // formatting marks after each of them (local deletions a fresh replay must not add: the
  // writers' own clean-ups are in the log already).
  const render = (seq) => {
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
    const roots = {}
    for (const [name, kind] of Object.entries(types)) {
      if (kind === 'text') {
        const t = copy.getText(name)
        roots[name] = { json: t.toJSON(), delta: t.toDelta() }
      } else if (kind === 'xml') roots[name] = { json: copy.getXmlFragment(name).toJSON(), children: tree(copy.getXmlFragment(name)) }
      else if (kind === 'map') roots[name] = { json: copy.getMap(name).toJSON() }
      else if (kind === 'array') roots[name] = { json: copy.getArray(name).toJSON() }
    }
    out[seq] = roots
  }
  if (wanted.has(0)) render(0)
  for (const [seq, b64] of updates) {
    Y.applyUpdate(doc, Buffer.from(b64, 'base64'))
    if (wanted.has(seq)) render(seq)
  }
  return out
}

// An XML fragment as a tree: elements with tag, attributes and children; texts as deltas.
function tree (fragment) {
  return fragment.toArray().map((node) => node instanceof Y.XmlText
    ? { delta: node.toDelta() }
    : { tag: node.nodeName, attributes: node.getAttributes(), children: tree(node) })
}
