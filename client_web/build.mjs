// Bundles the client into dist/: dist/index.html plus hashed files under
// dist/assets/. Every URL in index.html is absolute (/assets/...), because the
// same index.html is served for / and for /d/{doc_id}.
import * as esbuild from 'esbuild'
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(fileURLToPath(import.meta.url))
const dist = path.join(root, 'dist')
const watch = process.argv.includes('--watch')

/**
 * Copies the icon to dist/assets under a content-hashed name (assets are cached for good) and
 * returns its URL. A file rather than a data: URL: the Content-Security-Policy allows images
 * from this origin only (server/web.py).
 */
const writeIcon = async () => {
  const svg = await readFile(path.join(root, 'src', 'favicon.svg'))
  const name = `favicon-${createHash('sha256').update(svg).digest('hex').slice(0, 8).toUpperCase()}.svg`
  await writeFile(path.join(dist, 'assets', name), svg)
  return `/assets/${name}`
}

/** Writes dist/index.html pointing at the files esbuild just emitted. */
const writeIndex = async (metafile) => {
  let script = null
  let stylesheet = null
  for (const [file, output] of Object.entries(metafile.outputs)) {
    const url = '/' + path.relative(dist, path.join(root, file)).split(path.sep).join('/')
    if (output.entryPoint === 'src/main.js') script = url
    else if (output.entryPoint === 'src/styles.css') stylesheet = url
  }
  if (!script || !stylesheet) throw new Error('build: entry points missing from the metafile')
  const icon = await writeIcon()
  const template = await readFile(path.join(root, 'index.html'), 'utf8')
  const html = template
    .replace('<!-- icon -->', `<link rel="icon" type="image/svg+xml" href="${icon}">`)
    .replace('<!-- styles -->', `<link rel="stylesheet" href="${stylesheet}">`)
    .replace('<!-- script -->', `<script type="module" src="${script}"></script>`)
  await writeFile(path.join(dist, 'index.html'), html)
}

const options = {
  absWorkingDir: root,
  entryPoints: ['src/main.js', 'src/styles.css'],
  outdir: 'dist/assets',
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: !watch,
  sourcemap: true,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'info',
  plugins: [{
    name: 'index-html',
    setup (build) {
      build.onEnd(async (result) => {
        if (result.errors.length === 0) await writeIndex(result.metafile)
      })
    }
  }]
}

await rm(dist, { recursive: true, force: true })
await mkdir(path.join(dist, 'assets'), { recursive: true })
if (watch) {
  const ctx = await esbuild.context(options)
  await ctx.watch()
} else {
  await esbuild.build(options)
}
