// Drives the golden-path app in headless Chromium through the preview origin: the todo list
// loads, adding an item makes a real backend request, and the item survives a reload.
// Usage: node golden-preview.mjs PREVIEW_URL ARTIFACT_DIR [published]   → prints one JSON line.
// With `published`, URL is the app's public URL (a production build: no HMR to wait for).
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'

const [url, artifacts = 'test-artifacts', mode = 'preview'] = process.argv.slice(2)
const published = mode === 'published'
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const result = { ok: false, steps: [], console: [] }
const page = await browser.newPage()
page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`))
try {
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30000 })
  await page.getByRole('heading', { name: 'Todos' }).waitFor({ timeout: 30000 })
  await page.getByTestId('empty').waitFor({ timeout: 15000 })
  result.steps.push('list loaded (empty)')
  // Vite's client logs this once its HMR WebSocket is up: the upgrade went through the proxy.
  const deadline = Date.now() + 15000
  while (!published && !result.console.some((l) => l.includes('[vite] connected')) && Date.now() < deadline) {
    await page.waitForTimeout(100)
  }
  result.hmr = result.console.some((l) => l.includes('[vite] connected'))
  await page.getByLabel('New todo').fill('buy milk')
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/todos') && r.request().method() === 'POST', { timeout: 15000 }),
    page.getByRole('button', { name: 'Add' }).click(),
  ])
  result.post_status = resp.status()
  result.post_body = await resp.json()
  await page.getByTestId('todos').getByText('buy milk').waitFor({ timeout: 10000 })
  result.steps.push('item added through the backend')
  await page.reload({ waitUntil: 'domcontentloaded' })
  await page.getByTestId('todos').getByText('buy milk').waitFor({ timeout: 30000 })
  result.steps.push('item survived a reload')
  result.ok = true
} catch (e) {
  result.error = String(e)
  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: `${artifacts}/golden-${mode}.png` }).catch(() => {})
  result.html = (await page.content().catch(() => '')).slice(0, 2000)
} finally {
  await browser.close()
}
console.log(JSON.stringify(result))
process.exit(result.ok ? 0 : 1)
