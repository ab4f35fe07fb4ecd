// A URL shortener with stats: shorten a URL, open the short link (it must land on the long
// URL, by a server or a client redirect), and see the visit counted.
import { reload, until, visible } from "../smoke.mjs";

// The long URL never leaves the browser: the smoke answers it itself (page.route).
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
      const visit = await page.context().newPage();
      try {
        await visit.goto(short, { waitUntil: "domcontentloaded", timeout: 30_000 });
        await until(() => visit.url() === LONG, `the browser to land on ${LONG} (now at ${visit.url()})`);
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
