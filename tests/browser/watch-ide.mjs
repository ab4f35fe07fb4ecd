// Keeps a project's page open the way a person would while the agent works: the preview panel
// follows the agent (it reloads when the verify loop asks). Runs until its stdin closes or
// SECONDS pass, then prints one JSON line: what the page and the preview frame logged.
// Usage: node watch-ide.mjs PROJECT_URL SECONDS ARTIFACT_DIR
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'

const [url, seconds = '180', artifacts = 'test-artifacts'] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const result = { console: [], frames: [] }
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } })
page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`))
page.on('framenavigated', (f) => { if (f !== page.mainFrame()) result.frames.push(f.url().split('?')[0]) })
await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30000 })
console.error('watching')
await new Promise((resolve) => {
  const t = setTimeout(resolve, Number(seconds) * 1000)
  process.stdin.on('end', () => { clearTimeout(t); resolve() })
  process.stdin.on('close', () => { clearTimeout(t); resolve() })
  process.stdin.resume()
})
mkdirSync(artifacts, { recursive: true })
await page.screenshot({ path: `${artifacts}/watch-ide.png` }).catch(() => {})
await browser.close()
console.log(JSON.stringify(result))
