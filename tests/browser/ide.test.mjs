// The web IDE in a real browser (Debian's chromium via playwright-core) against the real local
// stack and the scripted LLM. Each test checks what a person would see. Tests that need a Worker
// feature the running build does not have fail with the reason (see probeFeatures).
//
// UPDATE_SCREENSHOTS=1 also writes docs/screenshot-home.png and docs/screenshot-project.png.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { after, before, test } from "node:test";
import { ROOT, launchBrowser, newPage, probeFeatures, sleep, startStack, withArtifacts } from "./harness.mjs";

const shots = process.env.UPDATE_SCREENSHOTS === "1";
let stack;
let browser;
let page;
let features;
let base;
let projectId;
let editedPath;
let staticServer;
let staticOrigin;
const EDIT_MARK = "edited-in-the-browser-test";

before(async () => {
  const script = join(tmpdir(), `or-browser-script-${process.pid}.json`);
  writeFileSync(script, "[]");
  // The second origin that hosts a copy of the frontend built with API_BASE = the Worker.
  staticServer = createServer();
  await new Promise((r) => staticServer.listen(0, "127.0.0.1", r));
  staticOrigin = `http://localhost:${staticServer.address().port}`;
  stack = await startStack(script, [`ALLOWED_ORIGINS=${staticOrigin}`]);
  base = stack.worker_url;
  features = await probeFeatures(base, stack, staticOrigin);
  console.log(`# worker features: ${JSON.stringify(features)}`);
  browser = await launchBrowser();
  page = await newPage(browser);
}, { timeout: 300_000 });

after(async () => {
  staticServer?.close();
  await browser?.close();
  await stack?.stop();
});

/** A test that needs Worker feature `f`. Every feature exists now, so a missing one is a
 * regression and fails the test (it is never skipped). */
function needs(f, name, fn) {
  test(name, async (t) => {
    assert.ok(features[f], `the Worker lacks the ${f} feature (probeFeatures)`);
    await fn(t);
  });
}

/** The assistant text of the last turn in the chat. */
const lastTurnText = () => page.locator(".turn").last().locator(".md").allInnerTexts().then((t) => t.join(""));

async function sendChat(text) {
  await page.locator("#chat-input").fill(text);
  await page.locator("#chat-input").press("Enter");
}

async function openProject() {
  if (!page.url().includes(`/p/${projectId}`)) await page.goto(`${base}/p/${projectId}`);
  await page.locator("#conn.open").waitFor({ timeout: 20_000 });
  // An earlier test may have left another sidebar tab (Publish, Git) open.
  await page.locator("#tab-files").click();
  await page.locator(".tree button.node.file").first().waitFor({ timeout: 20_000 });
}

test("1 create a project from the home page", async () => {
  await withArtifacts("01-create", page, async () => {
    await page.goto(base + "/");
    await page.locator("#first-prompt").waitFor();
    // Shift+Enter is a newline, not a submit.
    await page.locator("#first-prompt").fill("A tiny page that says hello");
    await page.locator("#first-prompt").press("Shift+Enter");
    assert.match(page.url(), /\/$/);
    await page.locator("#project-name").fill("browser test app");
    if (shots) await page.screenshot({ path: join(ROOT, "docs/screenshot-home.png") });
    if (features.agent) await stack.push([{ text: "Hello! I will build **a tiny page**.", delay_ms: 20 }]);
    await page.locator("#create").click();
    await page.waitForURL(/\/p\/[a-z0-9-]+$/, { timeout: 20_000 });
    projectId = page.url().split("/p/")[1];
    assert.match(projectId, /^browser-test-app-/);
    await page.locator(".tree button.node.file").first().waitFor({ timeout: 20_000 });
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    assert.equal(await page.locator(".project-name").innerText(), "browser test app");
    if (features.agent) {
      await page.locator(".user-msg", { hasText: "A tiny page that says hello" }).waitFor({ timeout: 20_000 });
    }
    // Newest first on the home page.
    await page.goto(base + "/");
    await page.locator("#projects .project-link").first().waitFor();
    assert.equal(await page.locator("#projects .project-link").first().getAttribute("data-id"), projectId);
    if (shots) await page.screenshot({ path: join(ROOT, "docs/screenshot-home.png") });
    await page.locator(`#projects .project-link[data-id="${projectId}"]`).click();
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
  });
});

needs("agent", "2 send a message and see streamed text", async () => {
  await withArtifacts("02-stream", page, async () => {
    await openProject();
    const answer = "Here is the plan, streamed in pieces.\n\n```js\nconsole.log('hi')\n```\n\nAll **done**.";
    await stack.push([{ text: answer, chunk: 6, delay_ms: 60 }]);
    await sendChat("What is the plan?");
    await page.locator(".user-msg", { hasText: "What is the plan?" }).waitFor();
    // Seen while streaming: the stop button is live and part of the text is there.
    await page.locator(".turn").last().locator(".md", { hasText: "Here is" }).waitFor({ timeout: 15_000 });
    await page.locator(".turn").last().locator(".turn-footer.usage").waitFor({ timeout: 20_000 });
    const t = await lastTurnText();
    assert.ok(t.includes("streamed in pieces") && t.includes("All done."), t);
    assert.equal(await page.locator(".turn").last().locator("pre code.hljs.language-js").count(), 1);
    assert.match(await page.locator(".turn").last().locator(".turn-footer").innerText(), /100 in \/ 20 out tokens · \$0\.00042/);
  });
});

needs("agent", "3 see a file the agent writes appear in the tree", async () => {
  await withArtifacts("03-file-appears", page, async () => {
    await openProject();
    await stack.push([
      { tools: [["write_file", { path: "notes/hello.md", content: "# Hello\n\nWritten by the agent.\n" }]], text: "Writing a note." },
      { text: "I wrote notes/hello.md." },
    ]);
    await sendChat("Write a note");
    await page.locator('.tool[data-tool="write_file"].ok').last().waitFor({ timeout: 20_000 });
    await page.locator('.tree button.node.file[data-path="notes/hello.md"]').waitFor({ timeout: 20_000 });
    assert.match(await page.locator('.tree button[data-path="notes/hello.md"]').getAttribute("class"), /changed/);
    // The file is saved when the turn ends (its checkpoint); the next test edits the saved file.
    await page.locator(".turn").last().locator(".turn-footer.usage", { hasText: "checkpoint #" }).waitFor({ timeout: 30_000 });
  });
});

test("4 open a file in the editor, edit, save, and the blob changed", async () => {
  await withArtifacts("04-editor-save", page, async () => {
    await openProject();
    const paths = await page.locator(".tree button.node.file").evaluateAll((bs) => bs.map((b) => b.dataset.path));
    editedPath = ["notes/hello.md", "README.md", "index.html"].find((p) => paths.includes(p)) ?? paths[0];
    // Expand every folder on the way so the file's button exists.
    await page.locator(`.tree button.node.file[data-path="${editedPath}"]`).click();
    const content = page.locator(".cm-content");
    await content.waitFor({ timeout: 20_000 });
    await content.click();
    await page.keyboard.press("ControlOrMeta+End");
    await page.keyboard.type(`\n${EDIT_MARK}\n`);
    await page.locator(".tab.dirty").waitFor();
    await page.locator(`.tree button[data-path="${editedPath}"].dirty`).waitFor();
    await page.keyboard.press("ControlOrMeta+s");
    await page.locator("#editor-status", { hasText: /Saved/ }).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator(".tab.dirty").count(), 0);
    const r = await fetch(`${base}/projects/${projectId}/files/${editedPath.split("/").map(encodeURIComponent).join("/")}`);
    assert.equal(r.status, 200);
    assert.ok((await r.text()).includes(EDIT_MARK), "the saved blob has the edit");
  });
});

test("4b a save conflict shows both versions and keeps the edit", async () => {
  await withArtifacts("04b-conflict", page, async () => {
    await openProject();
    await page.locator(`.tree button.node.file[data-path="${editedPath}"]`).click();
    await page.locator(".cm-content").click();
    await page.keyboard.press("ControlOrMeta+End");
    await page.keyboard.type("mine-not-lost");
    // Someone else (another tab) saves the same file first, from the same base.
    const head = (await (await fetch(`${base}/projects/${projectId}`)).json()).head.n;
    const enc = editedPath.split("/").map(encodeURIComponent).join("/");
    const current = await (await fetch(`${base}/projects/${projectId}/files/${enc}`)).text();
    const w = await fetch(`${base}/projects/${projectId}/files/${enc}?base=${head}`, { method: "PUT", body: `theirs-version\n${current}` });
    assert.equal(w.status, 200);
    await page.keyboard.press("ControlOrMeta+s");
    await page.locator("#conflict").waitFor({ timeout: 20_000 });
    // Unchanged stretches fold away, so both edits are on screen side by side.
    await page.locator("#conflict .cm-merge-a", { hasText: "mine-not-lost" }).waitFor();
    await page.locator("#conflict .cm-merge-b", { hasText: "theirs-version" }).waitFor();
    await page.locator("#conflict button", { hasText: "Save mine over it" }).click();
    await page.locator("#editor-status", { hasText: /Saved/ }).waitFor({ timeout: 20_000 });
    const r = await fetch(`${base}/projects/${projectId}/files/${enc}`);
    assert.ok((await r.text()).includes("mine-not-lost"));
  });
});

test("4c create, rename and delete a file from the tree", async () => {
  await withArtifacts("04c-tree-ops", page, async () => {
    await openProject();
    const api = (p) => fetch(`${base}/projects/${projectId}/files/${p}`).then((r) => r.status);
    await page.locator("button", { hasText: "New file" }).click();
    await page.locator("dialog input").fill("docs/new-note.md");
    await page.locator("dialog input").press("Enter");
    await page.locator('.tree button[data-path="docs/new-note.md"]').waitFor({ timeout: 20_000 });
    await page.locator('.tab.active[data-path="docs/new-note.md"]').waitFor({ timeout: 20_000 });
    await page.locator(".cm-content").click();
    await page.keyboard.type("# A note");
    await page.keyboard.press("ControlOrMeta+s");
    await page.locator("#editor-status", { hasText: /Saved/ }).waitFor({ timeout: 20_000 });
    await page.locator("button", { hasText: "Rename" }).click();
    await page.locator("dialog input").fill("docs/renamed-note.md");
    await page.locator("dialog input").press("Enter");
    await page.locator('.tree button[data-path="docs/renamed-note.md"]').waitFor({ timeout: 20_000 });
    await page.locator('.tree button[data-path="docs/new-note.md"]').waitFor({ state: "detached", timeout: 20_000 });
    assert.equal(await api("docs/renamed-note.md"), 200);
    assert.equal(await api("docs/new-note.md"), 404);
    assert.equal(await (await fetch(`${base}/projects/${projectId}/files/docs/renamed-note.md`)).text(), "# A note");
    await page.locator("button", { hasText: "Delete" }).click();
    await page.locator("dialog [data-confirm]").click();
    await page.locator('.tree button[data-path="docs/renamed-note.md"]').waitFor({ state: "detached", timeout: 20_000 });
    assert.equal(await api("docs/renamed-note.md"), 404);
  });
});

needs("terminal", "5 an interactive shell: a command, Ctrl-C, resize, and the scrollback survives a reload", async () => {
  await withArtifacts("05-terminal", page, async () => {
    await openProject();
    const rows = () => page.evaluate(() => document.querySelector("#terminal .xterm-rows")?.textContent ?? "");
    const waitFor = (re, timeout = 20_000) =>
      page.waitForFunction((src) => new RegExp(src).test(document.querySelector("#terminal .xterm-rows")?.textContent ?? ""), re.source, { timeout });
    await page.locator("#terminal .xterm-rows").waitFor({ timeout: 20_000 });
    // The shell's prompt, in the project.
    await waitFor(/\/project\$/);
    await page.locator("#terminal").click();
    await page.keyboard.type("echo sum=$((6*7))");
    await page.keyboard.press("Enter");
    await waitFor(/sum=42/);
    // Ctrl-C stops a running program and the prompt comes back.
    await page.keyboard.type("sleep 30");
    await page.keyboard.press("Enter");
    await sleep(800);
    await page.keyboard.press("Control+c");
    await page.keyboard.type("echo after-$((1+1))");
    await page.keyboard.press("Enter");
    await waitFor(/after-2/, 5000);
    // Resizing the page resizes the shell's terminal.
    await page.keyboard.type("clear; stty size");
    await page.keyboard.press("Enter");
    await waitFor(/^\S*\s*\d+ \d+/m, 5000);
    const size1 = (await rows()).match(/(\d+) (\d+)/)?.slice(1).join("x");
    const vp = page.viewportSize();
    await page.setViewportSize({ width: vp.width - 300, height: vp.height - 200 });
    await sleep(500);
    await page.keyboard.type("clear; stty size");
    await page.keyboard.press("Enter");
    await page.waitForFunction((before) => {
      const m = (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").match(/(\d+) (\d+)/);
      return m && `${m[1]}x${m[2]}` !== before;
    }, size1, { timeout: 5000 });
    await page.setViewportSize(vp);
    // A reload joins the same shell and shows what it had.
    await page.keyboard.type("echo before-reload-$((3*3))");
    await page.keyboard.press("Enter");
    await waitFor(/before-reload-9/);
    await page.reload();
    await openProject();
    await waitFor(/before-reload-9/);
    // What the shell writes becomes part of the project.
    await page.locator("#terminal").click();
    await page.keyboard.type("echo from-the-shell > shell-made.txt");
    await page.keyboard.press("Enter");
    await page.locator('.tree button[data-path="shell-made.txt"]').waitFor({ timeout: 15_000 });
  });
});

needs("preview", "6 the preview iframe loads the template app", async () => {
  await withArtifacts("06-preview", page, async () => {
    await openProject();
    const frame = page.locator("#preview-frame");
    if (!(await frame.count())) await page.locator("#preview-start").click();
    await frame.waitFor({ timeout: 120_000 });
    const src = await frame.getAttribute("src");
    assert.match(src ?? "", /preview\.localhost/);
    const body = page.frameLocator("#preview-frame").locator("body");
    // The frame is cross-origin, so poll its text through the frame locator.
    const deadline = Date.now() + 60_000;
    let text = "";
    while (Date.now() < deadline && !(text = (await body.innerText().catch(() => "")).trim())) {
      await page.waitForTimeout(250);
    }
    assert.ok((await body.innerText({ timeout: 60_000 })).trim().length > 0);
    await page.locator("#preview-width").selectOption("phone");
    assert.equal(await frame.evaluate((f) => f.style.width), "375px");
    await page.locator("#preview-width").selectOption("desktop");
  });
});

needs("agent", "7 reload mid-turn: the stream resumes with nothing lost or duplicated", async () => {
  await withArtifacts("07-reload", page, async () => {
    await openProject();
    const words = Array.from({ length: 50 }, (_, i) => `w${String(i + 1).padStart(2, "0")} `).join("");
    await stack.push([{ text: words, chunk: 4, delay_ms: 120 }]);
    await sendChat("Count slowly");
    await page.locator(".turn").last().locator(".md", { hasText: "w08" }).waitFor({ timeout: 20_000 });
    if (shots) await page.screenshot({ path: join(ROOT, "docs/screenshot-project.png") });
    await page.reload();
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    await page.locator(".turn").last().locator(".turn-footer.usage").waitFor({ timeout: 30_000 });
    assert.equal((await lastTurnText()).trim(), words.trim());
    assert.equal(await page.locator(".user-msg", { hasText: "Count slowly" }).count(), 1);
    // A dropped socket resumes with since=last seq: still exactly one copy.
    await stack.push([{ text: "after the drop", delay_ms: 50 }]);
    await sendChat("Again");
    await page.evaluate(() => window.openReplit.socket.drop());
    // The previous turn also has a footer: wait for this turn's answer before its footer.
    await page.locator(".turn").last().locator(".md", { hasText: "after the drop" }).waitFor({ timeout: 30_000 });
    await page.locator(".turn").last().locator(".turn-footer.usage").waitFor({ timeout: 30_000 });
    assert.equal((await lastTurnText()).trim(), "after the drop");
    assert.equal(await page.locator(".user-msg", { hasText: /^(You: )?Again$/ }).count(), 1);
  });
});

needs("agent", "8 stop a turn", async () => {
  await withArtifacts("08-stop", page, async () => {
    await openProject();
    const long = Array.from({ length: 200 }, (_, i) => `s${i} `).join("");
    await stack.push([{ text: long, chunk: 5, delay_ms: 150 }]);
    await sendChat("Say a lot");
    await page.locator(".turn").last().locator(".md", { hasText: "s3 " }).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator("#stop").isEnabled(), true);
    await page.locator("#stop").click();
    await page.locator(".turn").last().locator(".end-stopped").waitFor({ timeout: 20_000 });
    assert.equal(await page.locator("#stop").isEnabled(), false);
    const t = await lastTurnText();
    assert.ok(t.startsWith("s0 ") && !t.includes("s199"), "the partial answer is kept");
  });
});

test("9 restore a checkpoint: the tree and the editor follow", async () => {
  await withArtifacts("09-restore", page, async () => {
    await openProject();
    // A file made by hand, then restore the template's checkpoint #1: it goes away.
    await page.locator("button", { hasText: "New file" }).click();
    await page.locator("dialog input").fill("scratch/made-by-hand.txt");
    await page.locator("dialog input").press("Enter");
    await page.locator('.tree button[data-path="scratch/made-by-hand.txt"]').waitFor({ timeout: 20_000 });
    await page.locator(`.tree button.node.file[data-path="${editedPath}"]`).click();
    await page.locator(".cm-content", { hasText: "mine-not-lost" }).waitFor({ timeout: 20_000 });
    await page.locator("#tab-checkpoints").click();
    await page.locator('[data-restore="1"]').click();
    await page.locator("dialog [data-confirm]").click();
    await page.locator("#tab-files").click();
    await page.locator('.tree button[data-path="scratch/made-by-hand.txt"]').waitFor({ state: "detached", timeout: 20_000 });
    if (editedPath !== "notes/hello.md") {
      await page.waitForFunction(
        (m) => !(document.querySelector(".cm-content")?.textContent ?? "").includes(m),
        "mine-not-lost",
        { timeout: 20_000 },
      );
    }
    // The diff view between two checkpoints lists the change.
    await page.locator("#tab-checkpoints").click();
    await page.locator("#diff-from").selectOption("1");
    const head = (await (await fetch(`${base}/projects/${projectId}`)).json()).head.n;
    await page.locator("#diff-to").selectOption(String(head - 1));
    await page.locator("#diff-compare").click();
    await page.locator(".diff-file", { hasText: "scratch/made-by-hand.txt" }).waitFor({ timeout: 10_000 });
    await page.locator("#tab-files").click();
  });
});

test("10 download the zip", async () => {
  await withArtifacts("10-zip", page, async () => {
    await openProject();
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 20_000 }), page.locator("#download-zip").click()]);
    const file = join(tmpdir(), `or-export-${process.pid}.zip`);
    await dl.saveAs(file);
    const buf = readFileSync(file);
    assert.equal(buf.subarray(0, 2).toString(), "PK");
    const r = await fetch(`${base}/projects/${projectId}/files`);
    const { files } = await r.json();
    for (const f of files.slice(0, 5)) assert.ok(buf.includes(Buffer.from(f.path)), `${f.path} is in the zip`);
  });
});

needs("cors", "11 the frontend hosted on another origin uses the API through CORS", async () => {
  // Build a copy with API_BASE pointing at the Worker and serve it from a second origin.
  const dir = mkdtempSync(join(tmpdir(), "or-static-"));
  execFileSync(process.execPath, [join(ROOT, "static/build.mjs")], { env: { ...process.env, OUT_DIR: dir, API_BASE: base, QUIET: "1" } });
  const types = { ".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".map": "application/json", ".json": "application/json" };
  staticServer.on("request", (req, res) => {
    const p = normalize(decodeURIComponent(new URL(req.url, staticOrigin).pathname)).replace(/^(\.\.[/\\])+/, "");
    let f = join(dir, p);
    if (!f.startsWith(dir) || !existsSync(f) || p === "/") f = join(dir, "index.html");
    res.writeHead(200, { "content-type": types[extname(f)] ?? "application/octet-stream" });
    res.end(readFileSync(f));
  });
  const other = await newPage(browser);
  await withArtifacts("11-cross-origin", other, async () => {
    await other.goto(`${staticOrigin}/`);
    await other.locator(`#projects .project-link[data-id="${projectId}"]`).waitFor({ timeout: 20_000 });
    await other.goto(`${staticOrigin}/p/${projectId}`);
    await other.locator("#conn.open").waitFor({ timeout: 20_000 });
    await other.locator(".tree button.node.file").first().waitFor({ timeout: 20_000 });
    // Writes too: a PUT with a preflight, then the checkpoint list follows over the socket. Test 9
    // restored the template's checkpoint, so pick a file that exists now.
    const now = (await (await fetch(`${base}/projects/${projectId}/files`)).json()).files.map((f) => f.path);
    const target = ["README.md", "frontend/index.html", "index.html"].find((p) => now.includes(p)) ?? now[0];
    await other.locator(`.tree button.node.file[data-path="${target}"]`).click();
    await other.locator(".cm-content").click();
    await other.keyboard.press("ControlOrMeta+End");
    await other.keyboard.type("cross-origin-edit");
    await other.keyboard.press("ControlOrMeta+s");
    await other.locator("#editor-status", { hasText: /Saved/ }).waitFor({ timeout: 20_000 });
  });
  await other.context().close();
  // An origin not on the list is refused.
  const r = await fetch(`${base}/api/config`, { headers: { origin: "http://evil.localhost:1" } });
  assert.equal(r.headers.get("access-control-allow-origin"), null);
  assert.equal(r.status, 403);
});

test("12 publish from the IDE: steps, the live URL, the app at it, history and rollback", async () => {
  await withArtifacts("12-publish", page, async () => {
    await openProject();
    await page.getByTestId("publish-button").click();
    await page.getByTestId("publish-panel").waitFor();
    // Steps as they happen, ending live with the URL (a cold dependency cache installs first).
    await page.locator('[data-testid=publish-step][data-step=live][data-state=done]').waitFor({ timeout: 240_000 });
    const href = await page.getByTestId("publish-url").getAttribute("href");
    assert.match(href, /^http:\/\/browser-test-app\.apps\.localhost:\d+\/$/);
    assert.ok((await page.getByTestId("publish-log").textContent()).includes("npm run build"));
    // The app answers at its own host: no preview token, its backend behind /api.
    const app = await newPage(browser);
    await withArtifacts("12-published-app", app, async () => {
      const r = await app.goto(href);
      assert.equal(r.status(), 200);
      await app.locator("#root").waitFor({ state: "attached" });
      // Fetched by the page itself (the browser resolves *.localhost to loopback).
      const health = await app.evaluate(async () => {
        const r = await fetch("/api/health");
        return { status: r.status, body: await r.json() };
      });
      assert.deepEqual(health, { status: 200, body: { status: "ok" } });
    });
    await app.context().close();
    // A second deployment, then one click rolls back to the first.
    await page.getByTestId("publish-button").click();
    await page.locator('[data-testid=deploy-row][data-id=d-2][data-status=live]').waitFor({ timeout: 240_000 });
    await page.locator('[data-testid=deploy-row][data-id=d-1][data-status=previous]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid=deploy-row][data-id=d-1] [data-testid=deploy-rollback]').click();
    await page.locator("dialog [data-confirm]").click();
    await page.locator('[data-testid=deploy-row][data-id=d-1][data-status=live]').waitFor({ timeout: 60_000 });
    await page.locator('[data-testid=deploy-row][data-id=d-2][data-status=previous]').waitFor({ timeout: 20_000 });
  });
});

test("13 deploy credentials, app secrets and the Git panel", async () => {
  await withArtifacts("13-vault-secrets-git", page, async () => {
    await openProject();
    // A deploy credential goes in once; the page then shows only its last 4 characters.
    const canary = `canary-${process.pid}-netlify-9876`;
    await page.getByTestId("settings-button").click();
    await page.getByTestId("vault-panel").waitFor();
    const cred = page.locator("[data-testid=vault-row][data-name=NETLIFY_AUTH_TOKEN]");
    await cred.getByTestId("vault-input").fill(canary);
    await cred.getByTestId("vault-save").click();
    await page.locator("[data-testid=vault-row][data-name=NETLIFY_AUTH_TOKEN][data-set=true]").waitFor({ timeout: 10_000 });
    assert.match(await cred.textContent(), /…9876/);
    assert.equal(await cred.getByTestId("vault-input").inputValue(), "");
    assert.ok(!(await page.content()).includes(canary), "the credential's value is nowhere in the page");
    await cred.getByTestId("vault-remove").click();
    await page.locator("[data-testid=vault-row][data-name=NETLIFY_AUTH_TOKEN][data-set=false]").waitFor({ timeout: 10_000 });
    await page.locator("#settings-close").click();

    // App secrets: one is added; a name the server reserves is refused with its message.
    await page.getByTestId("secrets-tab").click();
    const secrets = page.getByTestId("secrets-panel");
    await secrets.getByTestId("secret-name").fill("APP_KEY");
    await secrets.getByTestId("secret-value").fill(`app-${canary}`);
    await secrets.getByTestId("secret-add").click();
    await secrets.locator("[data-testid=secret-row][data-name=APP_KEY]").waitFor({ timeout: 10_000 });
    assert.equal(await secrets.getByTestId("secret-value").inputValue(), "");
    assert.ok(!(await page.content()).includes(canary), "the secret's value is nowhere in the page");
    await secrets.getByTestId("secret-name").fill("PATH");
    await secrets.getByTestId("secret-value").fill("/tmp");
    await secrets.getByTestId("secret-add").click();
    await secrets.getByTestId("secret-error").filter({ hasText: "PATH" }).waitFor({ timeout: 10_000 });
    assert.equal(await secrets.locator("[data-testid=secret-row][data-name=PATH]").count(), 0);

    // Git: the clone URL, and a push to GitHub without a GITHUB_TOKEN says which credential is missing.
    await page.getByTestId("git-button").click();
    const git = page.getByTestId("git-panel");
    await git.waitFor();
    assert.equal(await git.getByTestId("git-clone-url").textContent(), `${base}/projects/${projectId}/git`);
    assert.equal(await git.getByTestId("github-private").isChecked(), true);
    await git.getByTestId("github-push").click();
    await git.getByTestId("github-error").filter({ hasText: "GITHUB_TOKEN" }).waitFor({ timeout: 20_000 });
    assert.equal(await git.getByTestId("github-result").isVisible(), false);
    await page.locator("#tab-files").click();
  });
});

test("14 import from git on the home page: a remote it may not use is refused with the reason", async () => {
  await withArtifacts("14-import", page, async () => {
    await page.goto(base + "/");
    await page.getByTestId("import-url").fill("file:///etc/passwd");
    await page.getByTestId("import-button").click();
    await page.getByTestId("import-error").filter({ hasText: "http" }).waitFor({ timeout: 20_000 });
    assert.match(page.url(), /\/$/, "still on the home page");
    assert.equal(await page.getByTestId("import-button").isDisabled(), false);
  });
});

test("15 rename a project in its IDE, then delete it from the home page: its open IDE says so, and it is gone", async () => {
  await withArtifacts("15-rename-delete", page, async () => {
    const r = await fetch(`${base}/projects`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "throwaway app", template: "frontend" }),
    });
    const created = await r.text();
    assert.equal(r.status, 201, created);
    const { project } = JSON.parse(created);
    // The project is open in another tab while it is renamed and deleted.
    const ide = await newPage(browser);
    try {
      await ide.goto(`${base}/p/${project.id}`);
      await ide.locator("#conn.open").waitFor({ timeout: 20_000 });
      await ide.getByTestId("rename-project").click();
      const ask = ide.locator("dialog[open]");
      await ask.locator("input").fill("  Renamed app  ");
      await ask.locator("button[type=submit]").click();
      await ide.locator(".project-name", { hasText: "Renamed app" }).waitFor({ timeout: 10_000 });
      assert.equal(await ide.title(), "Renamed app · open-replit");

      await page.goto(base + "/");
      const row = page.locator("#projects li", { has: page.locator(`.project-link[data-id="${project.id}"]`) });
      await row.waitFor();
      assert.equal(await row.locator(".project-link").innerText(), "Renamed app");
      // Cancelled: nothing happens.
      await row.getByTestId("delete-project").click();
      const confirm = page.locator("dialog[open]");
      assert.match(await confirm.innerText(), /Renamed app[\s\S]*cannot be undone/);
      await confirm.getByRole("button", { name: "Cancel" }).click();
      await sleep(300);
      assert.equal(await row.count(), 1, "a cancelled confirmation deletes nothing");
      await row.getByTestId("delete-project").click();
      await page.locator("dialog[open]").getByRole("button", { name: "Delete for good" }).click();
      await row.waitFor({ state: "detached", timeout: 60_000 });
      await ide.getByTestId("project-deleted").waitFor({ timeout: 20_000 });
      // Reloaded, the list does not have it, and the project cannot be opened.
      await page.reload();
      await page.locator("#projects .project-link").first().waitFor();
      assert.equal(await page.locator(`#projects .project-link[data-id="${project.id}"]`).count(), 0);
      const gone = await fetch(`${base}/projects/${project.id}`);
      assert.equal(gone.status, 404);
    } finally {
      await ide.close();
    }
  });
});

test("16 fork a project from its IDE: the copy opens with the same files", async () => {
  await withArtifacts("16-fork", page, async () => {
    await openProject();
    const tree = async (id) => (await (await fetch(`${base}/projects/${id}/files`)).json()).files.map((f) => `${f.path} ${f.sha256}`).sort();
    const files = await tree(projectId);
    await page.getByTestId("fork-project").click();
    const ask = page.locator("dialog[open]");
    assert.match(await ask.locator("input").inputValue(), /\(fork\)$/);
    await ask.locator("input").fill("my fork");
    await ask.locator("button[type=submit]").click();
    await page.waitForURL((u) => /\/p\/my-fork-[a-z0-9]+$/.test(u.pathname), { timeout: 30_000 });
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    assert.equal(await page.locator(".project-name").innerText(), "my fork");
    await page.locator(".tree button.node.file").first().waitFor({ timeout: 20_000 });
    const fork = new URL(page.url()).pathname.split("/p/")[1];
    assert.deepEqual(await tree(fork), files);
  });
});
