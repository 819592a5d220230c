// The activity page at /activity: who edits what, per hour (or minute, or
// day), drawn with uPlot, who is in which document right now, and a live
// feed from the activity stream (Server-Sent Events through the bus).

import uPlot from 'uplot'
import { h, replaceChildren, notifyError } from './dom.js'
import { brand } from './chrome.js'

const PALETTE = ['#3350b0', '#1d7348', '#955400', '#b3261e', '#7a3e9d', '#0e7490', '#6b7280']
const FIGURES = [
  ['events', 'Edits'],
  ['words_added', 'Words added'],
  ['active_seconds', 'Active minutes', (v) => v / 60]
]

/** Columns for uPlot: x = bucket starts (epoch seconds), one series per author. */
const columns = (items, figure, scale, step) => {
  const starts = [...new Set(items.map((i) => Date.parse(i.start) / 1000))].sort((a, b) => a - b)
  // An empty bucket either side: a single bucket of data is then a bar, not a point.
  if (starts.length) starts.unshift(starts[0] - step)
  if (starts.length) starts.push(starts[starts.length - 1] + step)
  const authors = [...new Set(items.map((i) => i.author))].sort()
  const index = new Map(starts.map((s, k) => [s, k]))
  const series = authors.map(() => starts.map(() => 0))
  for (const item of items) {
    const value = item[figure]
    series[authors.indexOf(item.author)][index.get(Date.parse(item.start) / 1000)] += scale ? scale(value) : value
  }
  return { authors, data: [starts, ...series] }
}

export const renderActivity = (root, { api, docUrl }) => {
  document.title = 'Activity · Palimpsest'
  const bucket = h('select', { class: 'input input-inline', attrs: { 'aria-label': 'Bucket', 'data-testid': 'activity-bucket' } },
    ['minute', 'hour', 'day'].map((b) => h('option', { value: b, text: `per ${b}`, selected: b === 'hour' })))
  const charts = h('div', { class: 'activity-charts', attrs: { 'data-testid': 'activity-charts' } })
  const totals = h('table', { class: 'activity-totals', attrs: { 'data-testid': 'activity-totals' } })
  const present = h('ul', { class: 'activity-presence', attrs: { 'data-testid': 'activity-presence' } })
  const feed = h('ol', { class: 'activity-feed', attrs: { 'data-testid': 'activity-feed', 'aria-live': 'polite' } })
  const plots = []

  const draw = (items) => {
    for (const plot of plots.splice(0)) plot.destroy()
    replaceChildren(charts)
    const step = { minute: 60, hour: 3600, day: 86400 }[bucket.value]
    for (const [figure, label, scale] of FIGURES) {
      const { authors, data } = columns(items, figure, scale, step)
      const box = h('figure', { class: 'activity-chart' }, [h('figcaption', { text: label })])
      charts.append(box)
      if (data[0].length === 0) {
        box.append(h('p', { class: 'muted', text: 'Nothing yet.' }))
        continue
      }
      plots.push(new uPlot({
        width: 340,
        height: 200,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
        series: [{}, ...authors.map((author, k) => ({
          label: author, stroke: PALETTE[k % PALETTE.length], width: 1,
          fill: PALETTE[k % PALETTE.length] + '99',
          paths: uPlot.paths.bars({ size: [0.8 / Math.max(1, authors.length), 40], align: 0 }),
          points: { show: false }
        }))],
        axes: [{}, { size: 48 }]
      }, data, box))
    }
    const sums = new Map()
    for (const item of items) {
      const row = sums.get(item.author) || { events: 0, inserted: 0, deleted: 0, words_added: 0, words_removed: 0, active_seconds: 0 }
      for (const key of Object.keys(row)) row[key] += item[key]
      sums.set(item.author, row)
    }
    replaceChildren(totals,
      h('thead', {}, [h('tr', {}, ['Author', 'Edits', 'Inserted', 'Deleted', 'Words +', 'Words −', 'Active'].map((t) => h('th', { text: t })))]),
      h('tbody', {}, [...sums.entries()].map(([author, r]) => h('tr', {}, [
        h('td', { text: author }), h('td', { text: String(r.events) }), h('td', { text: String(r.inserted) }),
        h('td', { text: String(r.deleted) }), h('td', { text: String(r.words_added) }),
        h('td', { text: String(r.words_removed) }), h('td', { text: `${Math.round(r.active_seconds / 60)} min` })
      ]))))
  }

  const load = async () => {
    try {
      const since = new Date(Date.now() - 7 * 86400 * 1000).toISOString()
      draw((await api.activity({ bucket: bucket.value, since })).items)
      const who = await api.presence()
      replaceChildren(present, ...(who.items.length ? who.items.map((item) => h('li', {}, [
        h('a', { href: docUrl(item.id), text: item.id }), `: ${item.users.join(', ')}`
      ])) : [h('li', { class: 'muted', text: 'Nobody is editing right now.' })]))
    } catch (err) {
      notifyError('Could not load the activity', err)
    }
  }
  bucket.addEventListener('change', load)

  let pending = null
  const stream = api.activityStream()
  stream.addEventListener('message', (event) => {
    const message = JSON.parse(event.data)
    feed.prepend(h('li', {}, [h('a', { href: docUrl(message.id), text: message.id }), ` ${message.kind} #${message.seq}`]))
    while (feed.children.length > 20) feed.lastChild.remove()
    // Redraw at most once a second while edits stream in.
    if (!pending) pending = setTimeout(() => { pending = null; load() }, 1000)
  })

  replaceChildren(root,
    h('header', { class: 'app-header' }, [brand(), h('div', { class: 'header-spacer' }),
      h('a', { href: '/search', class: 'button button-quiet', text: 'Search' })]),
    h('main', { id: 'main', class: 'home activity', tabIndex: -1 }, [
      h('div', { class: 'home-top' }, [h('h1', { class: 'home-title', text: 'Activity' }), bucket]),
      charts,
      h('h2', { text: 'Totals this week' }), totals,
      h('div', { class: 'activity-columns' }, [
        h('section', {}, [h('h2', { text: 'In the documents now' }), present]),
        h('section', {}, [h('h2', { text: 'Live' }), feed])
      ])
    ]))
  load()
  const presenceTimer = setInterval(load, 10000)
  return () => { clearInterval(presenceTimer); stream.close() }
}
