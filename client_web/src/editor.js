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
import { Marked } from 'marked'
import DOMPurify from 'dompurify'
import { h } from './dom.js'
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

// The preview shows what a writer typed to everyone who opens the document,
// admins included, so it is hostile input. Only this allow-list survives:
// structure and emphasis, code, quotes, tables, links, and images from this
// server. No <style>, no style/class/id attributes, no forms, frames, embeds,
// SVG or MathML, no event handlers: nothing that can run, restyle or overlay
// the page, or make the browser fetch from another host.
const PREVIEW_ATTRS = {
  a: ['href', 'title'],
  img: ['src', 'alt', 'title'],
  ol: ['start'],
  th: ['align'],
  td: ['align']
}
const PREVIEW_TAGS = [
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'p', 'br', 'hr', 'blockquote',
  'ul', 'ol', 'li', 'strong', 'em', 'b', 'i', 'del', 's', 'code', 'pre', 'kbd', 'sub', 'sup',
  'table', 'thead', 'tbody', 'tr', 'th', 'td', 'a', 'img'
]
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:'])

/** A link target a click may follow: http(s), mailto, or relative to this page. */
export const safeHref = (value) => {
  try {
    return LINK_PROTOCOLS.has(new URL(value, window.location.href).protocol)
  } catch {
    return false
  }
}

/** An image the preview may load: from this server only, so loading it tells no one else. */
export const sameOriginSrc = (value) => {
  try {
    const url = new URL(value, window.location.href)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === window.location.origin
  } catch {
    return false
  }
}

const attributeAllowed = (tag, name, value) => {
  if (!(PREVIEW_ATTRS[tag] || []).includes(name)) return false
  if (name === 'href') return safeHref(value)
  if (name === 'src') return sameOriginSrc(value)
  if (name === 'align') return ['left', 'right', 'center'].includes(value)
  if (name === 'start') return /^[0-9]{1,9}$/.test(value)
  return true
}

let purify = null

/** A DOMPurify instance of our own (hooks are per instance), configured once. */
const previewPurifier = () => {
  if (purify) return purify
  purify = DOMPurify(window)
  purify.addHook('uponSanitizeAttribute', (node, data) => {
    if (!attributeAllowed(node.nodeName.toLowerCase(), data.attrName, data.attrValue)) data.keepAttr = false
  })
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName === 'A' && node.hasAttribute('href')) {
      // Links in a preview open elsewhere and never get the opener.
      node.setAttribute('target', '_blank')
      node.setAttribute('rel', 'noopener noreferrer')
    } else if (node.nodeName === 'IMG' && !node.hasAttribute('src')) {
      // An image from elsewhere is shown as its description, never fetched.
      const alt = node.getAttribute('alt')
      node.replaceWith(node.ownerDocument.createTextNode(alt ? `[${alt}]` : ''))
    }
  })
  return purify
}

const PURIFY_CONFIG = {
  ALLOWED_TAGS: PREVIEW_TAGS,
  ALLOWED_ATTR: ['href', 'title', 'src', 'alt', 'align', 'start'],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  RETURN_DOM_FRAGMENT: true
}

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
// Bare tags (no attributes) that raw HTML in a document may still use.
const RAW_TAGS = /&#60;(\/?)(br|hr|p|b|i|em|strong|del|s|code|kbd|sub|sup)\s*(\/?)&#62;/gi

/**
 * Raw HTML written in the Markdown is shown as text, except a few bare
 * formatting tags; comments are dropped. So the attributes a writer types
 * (style=, on*=) never reach an HTML parser, not even DOMPurify's inert one:
 * Chromium reports every inline style or handler it parses as a CSP
 * violation, and a hostile document would flood those reports.
 */
const rawHtml = (text) => escapeHtml(text.replace(/<!--[\s\S]*?(?:-->|$)/g, '')).replace(RAW_TAGS, '<$1$2$3>')

const markdown = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html ({ text, block }) {
      const shown = rawHtml(text)
      // A block of raw HTML shown as text still reads as its own paragraph.
      return block && !shown.startsWith('<') ? `<p>${shown}</p>\n` : shown
    },
    // Task list items as characters: the allow-list has no <input>.
    checkbox ({ checked }) {
      return checked ? '\u2611 ' : '\u2610 '
    }
  }
})

/**
 * Markdown to a sanitised DocumentFragment: marked for GitHub-flavoured
 * Markdown (raw HTML as text, see rawHtml), then DOMPurify with the
 * allow-list above, which also checks every link and image URL.
 */
export const renderMarkdown = (text) => previewPurifier().sanitize(markdown.parse(text), PURIFY_CONFIG)

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
    if (text.trim()) el.replaceChildren(renderMarkdown(text))
    else el.replaceChildren(h('p', { class: 'preview-empty', text: 'Nothing to preview yet.' }))
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
