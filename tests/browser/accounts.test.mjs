// Accounts in a real browser: the stack runs with sign-in through a real OpenID provider
// (npm `oidc-provider`, started by the `stack` binary's --oidc). A person signs in through the
// provider's login form in Chromium, sees their name, creates a project, signs out, and is
// refused afterwards.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { launchBrowser, newPage, startStack, withArtifacts } from "./harness.mjs";

let stack;
let browser;
let page;

before(async () => {
  const script = join(tmpdir(), `or-accounts-script-${process.pid}.json`);
  writeFileSync(script, "[]");
  stack = await startStack(script, [], ["--oidc"]);
  assert.ok(stack.oidc_issuer, "the stack started no OpenID provider");
  browser = await launchBrowser();
  page = await newPage(browser);
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  await stack?.stop();
});

test("sign in through the OpenID provider, create a project, sign out, be refused", { timeout: 180_000 }, async () => {
  const base = stack.worker_url;
  await withArtifacts("accounts-sign-in", page, async () => {
    await page.goto(base + "/");
    // Nobody is signed in: the sign-in page, not the app.
    await page.locator("#sign-in").waitFor({ timeout: 60_000 });
    await page.locator("#sign-in-oidc").click();
    // The provider's own login form (another origin).
    await page.waitForURL((u) => u.origin === stack.oidc_issuer, { timeout: 60_000 });
    await page.locator('input[name="login"]').fill("alice");
    await page.locator('input[name="password"]').fill("correct horse");
    await page.locator('button[type="submit"]').click();
    // Back in the app, signed in, with the name from the ID token.
    await page.waitForURL((u) => u.origin === base && u.pathname === "/", { timeout: 60_000 });
    await page.locator("#who").waitFor({ timeout: 60_000 });
    assert.equal(await page.locator("#who").innerText(), "Test alice");
    // The session cookie is HttpOnly: the page's script cannot read it.
    assert.equal(await page.evaluate(() => document.cookie.includes("or_session")), false);
    const cookies = await page.context().cookies(base);
    const session = cookies.find((c) => c.name === "or_session");
    assert.ok(session?.httpOnly && session.sameSite === "Lax", JSON.stringify(cookies));

    // Create a project through the home page.
    await page.locator("#project-name").fill("signed-in-app");
    await page.locator("#create").click();
    await page.waitForURL(/\/p\/signed-in-app-[0-9a-f]{8}$/, { timeout: 60_000 });
    const id = new URL(page.url()).pathname.split("/")[2];
    const mine = await page.evaluate(async () => (await fetch("/projects")).json());
    assert.deepEqual(
      mine.projects.map((p) => [p.id, p.role]),
      [[id, "owner"]],
    );
    await page.locator("#open-share").waitFor({ timeout: 30_000 });

    // Sign out: back to the sign-in page, and the API refuses the browser.
    await page.locator("#sign-out").click();
    await page.waitForURL((u) => u.pathname === "/", { timeout: 30_000 });
    await page.locator("#sign-in").waitFor({ timeout: 30_000 });
    const after = await page.evaluate(async (pid) => {
      const a = await fetch("/projects");
      const b = await fetch(`/projects/${pid}/files`);
      return [a.status, b.status];
    }, id);
    assert.deepEqual(after, [401, 401]);
    // Opening the project's page again shows the sign-in page, not the project.
    await page.goto(`${base}/p/${id}`);
    await page.locator("#sign-in").waitFor({ timeout: 30_000 });
  });
});
