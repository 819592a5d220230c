#!/usr/bin/env node
// A whole-document restore of a ProseMirror document while a client keeps typing in a block
// the restore changes, through a real server. Two stock WebsocketProviders (BroadcastChannel
// off), edits made as y-prosemirror's binding makes them (ProseMirror transactions written by
// updateYFragment):
//
//   1. the writer makes a heading and two paragraphs; that seq is the one restored;
//   2. the writer changes the heading's level, bolds a word of the third block and types
//      words at its end, then goes offline and keeps typing there (words the server has not
//      seen: concurrent with the restore);
//   3. the restorer asks the server to restore the first seq (HTTP), and waits to see it;
//   4. the writer comes back; both must converge.
//
//   node yxmlrestore.mjs '{"url": "ws://127.0.0.1:PORT/ws", "http": "http://127.0.0.1:PORT",
//                          "doc": "d"}'
//
// One JSON line on stdout: {ok, seq, restoreSeq, restored (the restorer's tree once it saw
// the restore), final (both clients' tree), converged, offline (the words typed offline)}
// or {ok: false, error}.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { updateYFragment, yXmlFragmentToProseMirrorRootNode } from 'y-prosemirror'
import { schema } from 'prosemirror-schema-basic'
import { EditorState, TextSelection } from 'prosemirror-state'

const cfg = JSON.parse(process.argv[2])

function client (name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(cfg.url, cfg.doc, doc, {
    WebSocketPolyfill: WebSocket, disableBc: true, params: { name }
  })
  return { doc, provider }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitFor (cond, seconds, what) {
  const end = Date.now() + seconds * 1000
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`)
    await sleep(50)
  }
}

// One ProseMirror transaction on the client's fragment, written back as the binding does.
function edit (c, change) {
  const frag = c.doc.getXmlFragment('prosemirror')
  const state = EditorState.create({ schema, doc: yXmlFragmentToProseMirrorRootNode(frag, schema) })
  const tr = change(state.tr)
  c.doc.transact(() => updateYFragment(c.doc, frag, tr.doc, { mapping: new Map(), isOMark: new Map() }))
}

// The end of the n-th top-level block, as a ProseMirror position.
function endOf (doc, n) {
  let pos = 0
  for (let i = 0; i < n; i++) pos += doc.child(i).nodeSize
  return pos + doc.child(n).nodeSize - 1
}

const typeAtEnd = (word) => (tr) => {
  const at = endOf(tr.doc, 2)
  return tr.setSelection(TextSelection.create(tr.doc, at)).insertText(word)
}

function tree (fragment) {
  return fragment.toArray().map((node) => node instanceof Y.XmlText
    ? { delta: node.toDelta() }
    : { tag: node.nodeName, attributes: node.getAttributes(), children: tree(node) })
}
const treeOf = (c) => tree(c.doc.getXmlFragment('prosemirror'))
const blockText = (c, n) => c.doc.getXmlFragment('prosemirror').get(n).toArray()
  .map((t) => t.toDelta().map((d) => d.insert).join('')).join('')

async function head () {
  let page = await (await fetch(`${cfg.http}/api/documents/${cfg.doc}/events?limit=500`)).json()
  while (page.next !== null) {
    page = await (await fetch(`${cfg.http}/api/documents/${cfg.doc}/events?after=${page.next}&limit=500`)).json()
  }
  return page.seq
}
async function serverBlock (n) {
  const body = await (await fetch(`${cfg.http}/api/documents/${cfg.doc}/content?seq=${await head()}`)).json()
  const block = body.roots.prosemirror && body.roots.prosemirror.children[n]
  return block ? block.children.map((t) => t.delta.map((d) => d.insert).join('')).join('') : null
}

async function main () {
  const writer = client('writer')
  const restorer = client('restorer')
  await waitFor(() => writer.provider.synced && restorer.provider.synced, 15, () => 'not synced')

  // 1. The document as it will be restored.
  edit(writer, (tr) => {
    const blocks = [
      schema.nodes.heading.create({ level: 1 }, schema.text('Notes')),
      schema.nodes.paragraph.create(null, schema.text('alpha beta')),
      schema.nodes.paragraph.create(null, schema.text('gamma delta'))
    ]
    return tr.replaceWith(0, tr.doc.content.size, blocks)
  })
  await waitFor(async () => (await serverBlock(2)) === 'gamma delta', 15, () => 'first version not stored')
  const seq = await head()
  const expected = treeOf(writer)

  // 2. Changes the restore will undo, then words typed while connected (the restore removes
  //    them: they are in the document it replaces) ...
  edit(writer, (tr) => tr.setBlockType(1, 1, schema.nodes.heading, { level: 2 }))
  edit(writer, (tr) => { const at = endOf(tr.doc, 2) - 'delta'.length; return tr.addMark(at, at + 5, schema.marks.strong.create()) })
  for (const word of [' one', ' two', ' three']) { edit(writer, typeAtEnd(word)); await sleep(20) }
  await waitFor(async () => (await serverBlock(2)) === 'gamma delta one two three', 15, () => 'typing not stored')
  // ... and words typed offline, concurrent with the restore.
  writer.provider.disconnect()
  const offline = [' four', ' five', ' six']
  for (const word of offline) edit(writer, typeAtEnd(word))

  // 3. The restore, seen by the restorer.
  const answer = await fetch(`${cfg.http}/api/documents/${cfg.doc}/restore`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ seq })
  })
  if (answer.status !== 200) throw new Error(`restore answered ${answer.status}: ${await answer.text()}`)
  const restoreSeq = (await answer.json()).seq
  await waitFor(() => blockText(restorer, 2) === 'gamma delta', 15, () => `restore not seen: ${JSON.stringify(treeOf(restorer))}`)
  const restored = treeOf(restorer)

  // 4. The writer comes back: its offline words meet the restore.
  writer.provider.connect()
  const same = () => writer.provider.synced && JSON.stringify(treeOf(writer)) === JSON.stringify(treeOf(restorer)) &&
    Buffer.from(Y.encodeStateVector(writer.doc)).equals(Buffer.from(Y.encodeStateVector(restorer.doc)))
  await waitFor(same, 20, () => `not converged: ${JSON.stringify(treeOf(writer))} vs ${JSON.stringify(treeOf(restorer))}`)
  const final = treeOf(restorer)
  for (const c of [writer, restorer]) c.provider.destroy()
  process.stdout.write(JSON.stringify({
    ok: true, seq, restoreSeq, expected, restored, final, converged: true, offline
  }) + '\n', () => process.exit(0))
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) }) + '\n',
    () => process.exit(1))
})
