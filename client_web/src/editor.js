// The editor: CodeMirror 6 bound to the shared Y.Text by y-codemirror.next,
// other people's cursors from awareness (cursors.js), Markdown highlighting,
// and a rendered, sanitised Markdown preview.
//
// The page runs under a strict Content-Security-Policy (server/web.py): no
// inline script, no style attributes, styles only from this origin or the
// one <style> element CodeMirror generates, which carries the per-response
// nonce the server wrote into <meta name="csp-nonce">.

import { Compartment, EditorState } from '@codemirror/state'
import {
  EditorView, keymap, placeholder, drawSelection, highlightActiveLine,
  highlightSpecialChars, dropCursor, rectangularSelection, crosshairCursor
} from '@codemirror/view'
import { defaultKeymap } from '@codemirror/commands'
import { searchKeymap, highlightSelectionMatches } from '@codemirror/search'
import { HighlightStyle, LanguageSupport, syntaxHighlighting, indentOnInput, bracketMatching } from '@codemirror/language'
import { markdownLanguage, markdownKeymap } from '@codemirror/lang-markdown'
import { tags } from '@lezer/highlight'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { marked } from 'marked'
import DOMPurify from 'dompurify'
import { remoteCursors } from './cursors.js'

/**
 * The nonce the server gave this response for CodeMirror's stylesheet, read
 * once and then removed from the document (nothing in the page needs it after).
 * Empty when the page was not served by server/web.py.
 */
const cspNonce = (() => {
  const meta = document.querySelector('meta[name="csp-nonce"]')
  const value = meta ? meta.getAttribute('content') || '' : ''
  if (meta) meta.remove()
  return /^[A-Za-z0-9+/_-]+=*$/.test(value) && value !== '__CSP_NONCE__' ? value : ''
})()

const markdownHighlight = HighlightStyle.define([
  { tag: tags.heading1, fontSize: '1.45em', fontWeight: '700', color: 'var(--ink)' },
  { tag: tags.heading2, fontSize: '1.25em', fontWeight: '700', color: 'var(--ink)' },
  { tag: tags.heading3, fontSize: '1.1em', fontWeight: '700', color: 'var(--ink)' },
  { tag: [tags.heading4, tags.heading5, tags.heading6], fontWeight: '700', color: 'var(--ink)' },
  { tag: tags.emphasis, fontStyle: 'italic' },
  { tag: tags.strong, fontWeight: '700' },
  { tag: tags.strikethrough, textDecoration: 'line-through' },
  { tag: [tags.link, tags.url], color: 'var(--accent)' },
  { tag: tags.quote, color: 'var(--ink-soft)', fontStyle: 'italic' },
  { tag: tags.monospace, fontFamily: 'var(--font-mono)', color: 'var(--code-ink)' },
  { tag: [tags.processingInstruction, tags.meta, tags.contentSeparator], color: 'var(--ink-faint)' },
  { tag: tags.list, color: 'var(--accent-ink)' }
])

const editorTheme = EditorView.theme({
  '&': { height: '100%', fontSize: '16px', backgroundColor: 'transparent' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'var(--font-writing)', lineHeight: '1.7', overflow: 'auto' },
  '.cm-content': {
    maxWidth: '46rem',
    margin: '0 auto',
    padding: '2rem 1.5rem 40vh',
    caretColor: 'var(--ink)'
  },
  '.cm-line': { padding: '0 2px' },
  '.cm-activeLine': { backgroundColor: 'var(--active-line)' },
  '.cm-cursor': { borderLeftColor: 'var(--ink)', borderLeftWidth: '2px' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': {
    backgroundColor: 'var(--selection) !important'
  },
  '.cm-placeholder': { color: 'var(--ink-faint)', fontStyle: 'italic' },
  // Remote carets (cursors.js): the colour comes from element.style, the
  // rest from here. The name stays visible (not only on hover) so people can
  // tell who is where at a glance, and stays small whatever it is.
  '.cm-yRemoteCaretLayer': { pointerEvents: 'none' },
  '.cm-ySelectionCaret': {
    borderLeftWidth: '2px',
    borderLeftStyle: 'solid',
    borderLeftColor: 'var(--ink)',
    marginLeft: '-1px'
  },
  '.cm-ySelectionInfo': {
    position: 'absolute',
    left: '-2px',
    bottom: '100%',
    maxWidth: '16em',
    overflow: 'hidden',
    textOverflow: 'ellipsis',
    whiteSpace: 'nowrap',
    color: 'white',
    fontFamily: 'var(--font-ui)',
    fontSize: '11px',
    fontStyle: 'normal',
    fontWeight: '600',
    lineHeight: '1.4',
    padding: '0 5px',
    borderRadius: '4px 4px 4px 0',
    userSelect: 'none'
  },
  '.cm-panels': { fontFamily: 'var(--font-ui)' }
})

const readOnlyCompartment = new Compartment()

const readOnlyExtension = (readOnly) => [
  EditorState.readOnly.of(readOnly),
  EditorView.contentAttributes.of({ 'aria-readonly': String(readOnly) })
]

/** Switches the editor between editing and reading only (cursor and selection still work). */
export const setReadOnly = (view, readOnly) => {
  view.dispatch({ effects: readOnlyCompartment.reconfigure(readOnlyExtension(readOnly)) })
}

/**
 * Creates the live editor inside `parent`, bound to `sync.text`.
 *
 * @param {HTMLElement} parent
 * @param {import('./sync.js').DocumentSync} sync
 * @param {{readOnly?: boolean}} [opts]
 * @returns {EditorView}
 */
export const createEditor = (parent, sync, { readOnly = false } = {}) => {
  const state = EditorState.create({
    doc: sync.text.toString(),
    extensions: [
      highlightSpecialChars(),
      drawSelection(),
      dropCursor(),
      EditorState.allowMultipleSelections.of(true),
      indentOnInput(),
      bracketMatching(),
      rectangularSelection(),
      crosshairCursor(),
      highlightActiveLine(),
      highlightSelectionMatches(),
      EditorView.lineWrapping,
      // The Markdown language alone: markdown() would also bundle the HTML,
      // CSS and JavaScript parsers for embedded code (~140 kB) we do not need.
      new LanguageSupport(markdownLanguage),
      syntaxHighlighting(markdownHighlight),
      placeholder('Start writing. Markdown works: # heading, **bold**, - list…'),
      keymap.of([...markdownKeymap, ...yUndoManagerKeymap, ...searchKeymap, ...defaultKeymap]),
      // No awareness for yCollab: its remote selections build style attributes
      // from what remote clients send; remoteCursors draws them safely.
      yCollab(sync.text, null, { undoManager: sync.undoManager }),
      remoteCursors(sync.text, sync.awareness),
      EditorView.cspNonce.of(cspNonce),
      editorTheme,
      readOnlyCompartment.of(readOnlyExtension(readOnly)),
      EditorView.contentAttributes.of({ 'aria-label': 'Document text (Markdown)' })
    ]
  })
  return new EditorView({ state, parent })
}

let purifyConfigured = false

/** Markdown to safe HTML: marked for GitHub-flavoured Markdown, DOMPurify to sanitise. */
export const renderMarkdown = (text) => {
  if (!purifyConfigured) {
    // Links in a preview open elsewhere and never get the opener.
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank')
        node.setAttribute('rel', 'noopener noreferrer')
      }
    })
    purifyConfigured = true
  }
  const html = marked.parse(text, { gfm: true, async: false })
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true } })
}

/**
 * Keeps `el` showing the rendered text while it is visible. Rendering is
 * batched to one per animation frame (a paste may fire many updates).
 *
 * @returns {{refresh: () => void, destroy: () => void}}
 */
export const bindPreview = (el, ytext, isVisible) => {
  let scheduled = false
  const render = () => {
    scheduled = false
    if (!isVisible()) return
    const text = ytext.toString()
    el.innerHTML = text.trim()
      ? renderMarkdown(text)
      : '<p class="preview-empty">Nothing to preview yet.</p>'
  }
  const schedule = () => {
    if (scheduled) return
    scheduled = true
    requestAnimationFrame(render)
  }
  ytext.observe(schedule)
  schedule()
  return { refresh: schedule, destroy: () => ytext.unobserve(schedule) }
}
