// Benchmark helper: time from navigation to an interactive project page (socket open, files
// listed) in headless Chromium. Usage: node tti.mjs WORKER_URL PROJECT_ID [RUNS] → one JSON line.
import { chromium } from 'playwright-core'

const [base, id, runs = '5'] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const samples = []
try {
  for (let i = 0; i < Number(runs); i++) {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${base}/p/${id}`)
    await page.locator('#conn.open').waitFor({ timeout: 30000 })
    await page.locator('.tree button.node.file').first().waitFor({ timeout: 30000 })
    samples.push(await page.evaluate(() => performance.now()))
    await context.close()
  }
} finally {
  await browser.close()
}
samples.sort((a, b) => a - b)
console.log(JSON.stringify({ samples, median: samples[Math.floor(samples.length / 2)] }))
