// A URL shortener with stats: shorten a URL, open the short link (it must lead to the long
// URL, by a server or a client redirect), and see the visit counted.
import { request } from "node:http";
import { reload, until, visible } from "../smoke.mjs";

/**
 * One GET of `url` with the browser's cookies (the preview's token), redirects not followed.
 * Sent to 127.0.0.1 with the URL's Host: Node does not resolve `*.localhost` as chromium does.
 */
async function getOnce(page, url) {
  const u = new URL(url);
  const cookie = (await page.context().cookies())
    .filter((c) => u.hostname === c.domain.replace(/^\./, "") || u.hostname.endsWith(c.domain))
    .map((c) => `${c.name}=${c.value}`)
    .join("; ");
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: u.port || 80, path: u.pathname + u.search, headers: { host: u.host, cookie } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url} took over 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

// The long URL is never fetched for real: a server redirect is read off the answer, and a
// client-side one is answered by the browser itself (the route below).
const LONG = "https://example.com/articles/42?ref=eval";

export default {
  id: "shortener",
  title: "URL shortener with stats",
  template: "fullstack",
  prompt: `Build a URL shortener with visit stats, with a FastAPI + SQLite backend and a React frontend.

An automated browser test checks exactly this, so keep these names:
- the page has a heading "Shortener";
- a text field labelled "Long URL" and a button "Shorten";
- each shortened link is an element with data-testid="link" that shows the short link as a full URL on the page's own origin inside an element with data-testid="short-url", and its visit count inside an element with data-testid="visits" (just the number);
- opening the short link in the browser ends up on the long URL, and every opening counts as one visit;
- links and visits are stored by the backend, so they survive a page reload.`,

  async smoke(page, t) {
    const link = () => page.getByTestId("link").filter({ hasText: new URL(LONG).pathname });
    const visits = async () => Number((await link().getByTestId("visits").first().innerText()).trim());
    await page.context().route("https://example.com/**", (r) =>
      r.fulfill({ status: 200, contentType: "text/html", body: "<title>landed</title><h1>landed</h1>" }),
    );
    await t.step("the page shows the Shortener heading", () =>
      visible(page.getByRole("heading", { name: "Shortener" }), 'the heading "Shortener"', 30_000),
    );
    let short = "";
    await t.step("shorten a URL", async () => {
      await page.getByLabel("Long URL").fill(LONG);
      await page.getByRole("button", { name: "Shorten" }).click();
      await visible(link(), `a data-testid="link" for ${LONG}`);
      short = (await link().getByTestId("short-url").first().innerText()).trim();
      const origin = new URL(page.url()).origin;
      if (!short.startsWith(origin + "/")) throw new Error(`the short link ${JSON.stringify(short)} is not on ${origin}`);
      await until(async () => (await visits()) === 0, "a visit count of 0 on the new link");
    });
    await t.step("the short link lands on the long URL", async () => {
      // A server redirect is read off the answer: the browser's route handler would not see a
      // redirect's target (playwright calls it for the first URL only), and the long URL must
      // not be fetched for real.
      const first = await getOnce(page, short);
      const location = first.headers.location;
      if (first.status >= 300 && first.status < 400 && location) {
        const target = new URL(location, short).href;
        if (target !== new URL(LONG).href) throw new Error(`the short link redirects to ${target}, not ${LONG}`);
        return;
      }
      if (first.status !== 200) throw new Error(`the short link answered ${first.status}`);
      // No server redirect: the page itself must send the browser on (a client-side redirect).
      const visit = await page.context().newPage();
      try {
        const landed = visit.waitForRequest((r) => r.url() === LONG && r.isNavigationRequest(), { timeout: 30_000 });
        await visit.goto(short, { waitUntil: "commit", timeout: 30_000 }).catch(() => {});
        await landed.catch(() => {
          throw new Error(`the short link's page did not navigate to ${LONG} within 30 s (it stayed at ${visit.url()})`);
        });
      } finally {
        await visit.close();
      }
    });
    await t.step("the visit is counted and survives a reload", async () => {
      await reload(page);
      await visible(link(), "the link after a reload", 30_000);
      await until(async () => (await visits()) === 1, "a visit count of 1");
    });
  },
};
