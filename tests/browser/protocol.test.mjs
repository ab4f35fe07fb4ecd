// The project page against a scripted WebSocket peer that follows docs/protocol.md exactly
// (hello, seq, `?since=` replay, the agent turn events), while HTTP goes to the real stack. This
// checks the page's side of the protocol — streaming, tool steps, usage, stop, queueing, reload
// and reconnect without loss or duplicates — independently of the Worker's agent loop.

import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ARTIFACTS, ROOT, launchBrowser, newPage, sleep, startStack, withArtifacts } from "./harness.mjs";

const shots = process.env.UPDATE_SCREENSHOTS === "1";
let stack;
let browser;
let page;
let base;
let projectId;
let room;

/** The server side of one project's WebSocket, per docs/protocol.md. */
class MockRoom {
  constructor() {
    this.log = [];
    this.seq = 0;
    this.sockets = new Set();
    this.received = [];
    this.turn = 0;
    this.running = null;
    this.queue = [];
    this.script = [];
    this.connects = [];
  }
  emit(ev) {
    const e = { seq: ++this.seq, ...ev };
    this.log.push(e);
    for (const ws of this.sockets) {
      try {
        ws.send(JSON.stringify(e));
      } catch {
        this.sockets.delete(ws); // the page went away (reload) before the close reached us
      }
    }
  }
  attach(ws) {
    const since = new URL(ws.url()).searchParams.get("since");
    this.connects.push(since);
    ws.send(JSON.stringify({ seq: 0, type: "hello", project_id: projectId, last_seq: this.seq }));
    if (since !== null) for (const e of this.log) if (e.seq > Number(since)) ws.send(JSON.stringify(e));
    this.sockets.add(ws);
    ws.onMessage((m) => this.onMessage(ws, JSON.parse(String(m))));
    // With an onClose handler the close is not forwarded by itself: finish the handshake.
    ws.onClose((code, reason) => {
      this.sockets.delete(ws);
      void ws.close({ code, reason });
    });
  }
  onMessage(ws, msg) {
    this.received.push(msg);
    if (msg.type === "ping") ws.send(JSON.stringify({ seq: 0, type: "pong", nonce: msg.nonce }));
    if (msg.type === "stop" && this.running) this.running.stopped = true;
    if (msg.type === "new_conversation") this.emit({ type: "conversation_reset", after_turn: this.turn });
    if (msg.type === "user_message") {
      if (this.running) {
        this.queue.push(msg);
        this.emit({ type: "queued", text: msg.text, position: this.queue.length });
      } else this.runTurn(msg).catch((e) => console.error("mock turn failed:", e));
    }
  }
  /** Plays the next scripted turn: a list of steps (event objects, or numbers = sleep ms). */
  async runTurn(msg) {
    const turn_id = ++this.turn;
    const state = { stopped: false };
    this.running = state;
    this.emit({ type: "turn_started", turn_id, text: msg.text, model: msg.model ?? "scripted/model-a" });
    const steps = this.script.shift() ?? [{ type: "assistant_delta", text: "ok" }];
    let end = "done";
    for (const s of steps) {
      if (state.stopped) {
        end = "stopped";
        break;
      }
      if (typeof s === "number") await sleep(s);
      else this.emit({ turn_id, ...s });
    }
    this.emit({ type: "turn_finished", turn_id, end, message: null, usage: { prompt_tokens: 1200, completion_tokens: 340, cost: 0.0123 }, checkpoint: null });
    this.running = null;
    const next = this.queue.shift();
    if (next) this.runTurn(next).catch((e) => console.error("mock turn failed:", e));
  }
}

before(async () => {
  const script = join(tmpdir(), `or-browser-proto-${process.pid}.json`);
  writeFileSync(script, "[]");
  stack = await startStack(script);
  base = stack.worker_url;
  const r = await fetch(`${base}/projects`, { method: "POST", body: JSON.stringify({ name: "todo app", template: "frontend" }), headers: { "content-type": "application/json" } });
  projectId = (await r.json()).project.id;
  browser = await launchBrowser();
  page = await newPage(browser);
  room = new MockRoom();
  await page.routeWebSocket(/\/projects\/[^/]+\/ws/, (ws) => room.attach(ws));
  // No shell sessions behind this scripted peer: the terminal runs one-shot commands (P7).
  await page.routeWebSocket(/\/projects\/[^/]+\/pty/, (ws) => ws.close());
  // Two models, so the picker has a choice (the Worker's /api/models may not exist yet).
  await page.route(/\/api\/models$/, (route) =>
    route.fulfill({ json: { models: [{ id: "scripted/model-a", name: "Model A" }, { id: "scripted/model-b", name: "Model B" }], default: "scripted/model-a" } }),
  );
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const turnText = (n) => page.locator(`.turn[data-turn="${n}"] .md`).allInnerTexts().then((t) => t.join(""));
const deltas = (text, size, ms) => {
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push({ type: "assistant_delta", text: text.slice(i, i + size) }, ms);
  return out;
};

async function send(text) {
  await page.locator("#chat-input").fill(text);
  await page.locator("#chat-input").press("Enter");
}

test("P1 a turn streams markdown, tool steps with output, file marks and usage", async () => {
  await withArtifacts("p1-turn", page, async () => {
    await page.goto(`${base}/p/${projectId}`);
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    await page.locator(".tree button.node.file").first().waitFor({ timeout: 20_000 });
    // Benchmark row: navigation start → connected, files listed, composer ready.
    const tti = await page.evaluate(() => Math.round(performance.now()));
    console.log(`# project page interactive after ${tti} ms (headless chromium, local stack)`);
    assert.equal(room.connects[0], "0", "the first connection asks for the whole log");
    await page.locator("#model-picker option").nth(1).waitFor({ state: "attached" });
    await page.locator("#model-picker").selectOption("scripted/model-b");
    room.script.push([
      ...deltas("I'll add a **todo list** component:\n\n```tsx\nexport function Todo() {\n  return <ul />;\n}\n```\n", 7, 30),
      { type: "tool_call_started", call_id: "c1", name: "write_file", arguments: { path: "src/Todo.tsx", content: "export function Todo() {}\n" } },
      { type: "file_changed", path: "src/Todo.tsx", sha256: "ab" },
      300,
      { type: "tool_call_finished", call_id: "c1", ok: true, result: "wrote src/Todo.tsx (26 bytes)", duration_ms: 42 },
      { type: "tool_call_started", call_id: "c2", name: "run_command", arguments: { command: "npm test" } },
      { type: "tool_output", call_id: "c2", stream: "stdout", data: "PASS src/Todo.test.tsx\n" },
      { type: "tool_output", call_id: "c2", stream: "stderr", data: "warning: slow test\n" },
      1500,
      { type: "tool_call_finished", call_id: "c2", ok: true, result: "exit 0", duration_ms: 1834 },
      { type: "status", message: "verifying the preview…" },
      ...deltas("Done — the list renders and the tests pass.", 6, 40),
    ]);
    await send("Add a todo list");
    await page.locator('.tool[data-tool="run_command"].running').waitFor({ timeout: 20_000 });
    if (shots) {
      await page.locator('.tree button[data-path="src/App.tsx"]').click();
      await page.locator(".cm-content", { hasText: "export" }).waitFor();
      await page.screenshot({ path: join(ROOT, "docs/screenshot-project.png") });
    }
    await page.locator(".turn .turn-footer.usage").waitFor({ timeout: 20_000 });
    assert.deepEqual(room.received.find((m) => m.type === "user_message"), { type: "user_message", text: "Add a todo list", model: "scripted/model-b" });
    const t = await turnText(1);
    assert.ok(t.includes("todo list") && t.includes("tests pass"), t);
    assert.equal(await page.locator('.turn[data-turn="1"] .md strong').first().innerText(), "todo list");
    assert.equal(await page.locator('.turn[data-turn="1"] code.hljs.language-tsx').count(), 1);
    const step = page.locator('.tool[data-tool="write_file"]');
    assert.match(await step.locator("summary").innerText(), /write_file\s*src\/Todo\.tsx\s*42 ms/);
    assert.match(await step.getAttribute("class"), /\bok\b/);
    const cmd = page.locator('.tool[data-tool="run_command"]');
    assert.match(await cmd.locator(".tool-output").textContent(), /PASS src\/Todo\.test\.tsx/);
    assert.match(await cmd.locator("summary").innerText(), /1\.8 s/);
    assert.match(await page.locator('.turn[data-turn="1"] .turn-footer').innerText(), /1,200 in \/ 340 out tokens · \$0\.012/);
    assert.match(await page.locator('.turn[data-turn="1"] .status-line').innerText(), /verifying the preview/);
    // The file the turn wrote is in the tree and marked; the agent's command is in the terminal.
    assert.match(await page.locator('.tree button[data-path="src/Todo.tsx"]').getAttribute("class"), /changed/);
    await page.waitForFunction(() => (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").includes("[agent] $ npm test"), null, { timeout: 10_000 });
    await page.waitForFunction(() => (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").includes("PASS src/Todo.test.tsx"));
  });
});

test("P2 reload mid-turn and a dropped socket: nothing lost, nothing twice", async () => {
  await withArtifacts("p2-reload", page, async () => {
    const words = Array.from({ length: 40 }, (_, i) => `w${String(i + 1).padStart(2, "0")} `).join("");
    room.script.push(deltas(words, 4, 80));
    await send("Count");
    await page.locator('.turn[data-turn="2"] .md', { hasText: "w05" }).waitFor({ timeout: 10_000 });
    await page.reload();
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    await page.locator('.turn[data-turn="2"] .md', { hasText: "w20" }).waitFor({ timeout: 10_000 });
    // Drop the socket mid-stream: the page reconnects with since = the last seq it applied.
    const before = room.connects.length;
    await page.evaluate(() => window.openReplit.socket.drop());
    await page.locator('.turn[data-turn="2"] .turn-footer.usage').waitFor({ timeout: 20_000 });
    assert.equal((await turnText(2)).trim(), words.trim());
    assert.equal(await page.locator(".user-msg", { hasText: /^(You: )?Count$/ }).count(), 1);
    assert.equal(await page.locator(".turn").count(), 2);
    assert.ok(room.connects.length > before && Number(room.connects.at(-1)) > 0, `reconnected with since: ${room.connects}`);
    assert.equal(await page.locator('.tool[data-tool="run_command"]').count(), 1, "the replayed turn 1 is shown once");
  });
});

test("P3 stop a turn and see it stopped; the partial answer stays", async () => {
  await withArtifacts("p3-stop", page, async () => {
    room.script.push(deltas(Array.from({ length: 300 }, (_, i) => `s${i} `).join(""), 5, 100));
    await send("Talk a lot");
    await page.locator('.turn[data-turn="3"] .md', { hasText: "s2 " }).waitFor({ timeout: 10_000 });
    assert.ok(await page.locator("#stop").isEnabled());
    await page.locator("#stop").click();
    await page.locator('.turn[data-turn="3"] .end-stopped').waitFor({ timeout: 10_000 });
    assert.ok(room.received.some((m) => m.type === "stop"));
    assert.equal(await page.locator("#stop").isEnabled(), false);
    assert.ok((await turnText(3)).startsWith("s0 s1 s2"));
  });
});

test("P4 a message sent during a turn shows as queued, then runs", async () => {
  await withArtifacts("p4-queued", page, async () => {
    room.script.push(deltas("first answer, slowly ", 3, 150), deltas("second answer", 4, 20));
    await send("First");
    await page.locator('.turn[data-turn="4"] .md').waitFor({ timeout: 10_000 });
    await send("Second");
    await page.locator("#queued", { hasText: /1 queued: “Second”/ }).waitFor({ timeout: 10_000 });
    await page.locator('.turn[data-turn="5"] .turn-footer.usage').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator("#queued").isHidden(), true);
    assert.equal((await turnText(5)).trim(), "second answer");
  });
});

test("P5 Shift+Enter is a newline; Alt+digits reach the panels", async () => {
  await withArtifacts("p5-keyboard", page, async () => {
    const sent = room.received.length;
    await page.locator("#chat-input").fill("line one");
    await page.locator("#chat-input").press("Shift+Enter");
    await page.keyboard.type("line two");
    assert.equal(await page.locator("#chat-input").inputValue(), "line one\nline two");
    assert.equal(room.received.length, sent);
    await page.keyboard.press("Alt+5");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "preview-url");
    await page.keyboard.press("Alt+2");
    assert.ok(await page.evaluate(() => document.activeElement?.closest("#files-panel") !== null));
    await page.keyboard.press("Alt+1");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "chat-input");
    await page.locator("#chat-input").fill("");
  });
});

test("P6 the layout works at 1024 px", async () => {
  await withArtifacts("p6-narrow", page, async () => {
    await page.setViewportSize({ width: 1024, height: 700 });
    await sleep(300);
    for (const id of ["chat-panel", "files-panel", "editor-panel", "terminal-panel", "preview-panel"]) {
      const b = await page.locator(`#${id}`).boundingBox();
      assert.ok(b && b.width >= 120 && b.height >= 60 && b.x + b.width <= 1025, `${id}: ${JSON.stringify(b)}`);
    }
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= 1024), true);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "layout-1024.png") });
    await page.setViewportSize({ width: 1440, height: 900 });
  });
});

test("P7 the terminal runs a command through the endpoint, shows output and exit, keeps history", async () => {
  await withArtifacts("p7-terminal", page, async () => {
    const bodies = [];
    await page.route(/\/projects\/[^/]+\/terminal$/, async (route) => {
      const body = JSON.parse(route.request().postData() ?? "{}");
      bodies.push(body);
      const lines = [
        { type: "stdout", data: `ran: ${body.command}\n` },
        { type: "stderr", data: "a warning\n" },
        { type: "exit", exit_code: 3, duration_ms: 12, timed_out: false, truncated: false },
      ];
      await route.fulfill({ status: 200, contentType: "application/x-ndjson", body: lines.map((l) => JSON.stringify(l)).join("\n") + "\n" });
    });
    const text = () => page.evaluate(() => document.querySelector("#terminal .xterm-rows")?.textContent ?? "");
    await page.locator("#terminal").click();
    await page.keyboard.type("ls -la");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").includes("[exit 3 · 12 ms]"), null, { timeout: 10_000 });
    assert.ok((await text()).includes("ran: ls -la"));
    assert.deepEqual(bodies[0], { command: "ls -la" });
    await page.keyboard.press("ArrowUp");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").split("[exit 3").length === 3, null, { timeout: 10_000 });
    assert.equal(bodies.length, 2);
    assert.deepEqual(bodies[1], { command: "ls -la" });
    await page.unroute(/\/projects\/[^/]+\/terminal$/);
  });
});

test("P8 the preview shows the running app on its own origin; empty state starts it", async () => {
  await withArtifacts("p8-preview", page, async () => {
    const { createServer } = await import("node:http");
    const app = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><h1>Hello from the app</h1>");
    });
    await new Promise((r) => app.listen(0, "127.0.0.1", r));
    const url = `http://${projectId}.preview.localhost:${app.address().port}/?token=t`;
    let running = false;
    await page.route(/\/projects\/[^/]+\/preview(\/start|\/restart)?$/, (route) => {
      if (route.request().method() === "POST") running = true;
      return route.fulfill({ json: { running, url: running ? url : null, processes: [] } });
    });
    await page.reload();
    await page.locator("#preview-empty", { hasText: "No dev server" }).waitFor({ timeout: 20_000 });
    await page.locator("#preview-start").click();
    await page.frameLocator("#preview-frame").locator("h1", { hasText: "Hello from the app" }).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator("#preview-url").inputValue(), url);
    await page.locator("#preview-width").selectOption("tablet");
    assert.equal(await page.locator("#preview-frame").evaluate((f) => f.style.width), "768px");
    await page.locator('button[aria-label="Reload preview"]').click();
    await page.frameLocator("#preview-frame").locator("h1").waitFor({ timeout: 10_000 });
    const [popup] = await Promise.all([page.context().waitForEvent("page"), page.locator('button[aria-label="Open preview in a new tab"]').click()]);
    await popup.waitForLoadState();
    assert.equal(popup.url(), url);
    await popup.close();
    await page.unroute(/\/projects\/[^/]+\/preview(\/start|\/restart)?$/);
    app.close();
  });
});

test("P9 an open file follows the agent's checkpoint when clean, and keeps your edits when dirty", async () => {
  await withArtifacts("p9-follow", page, async () => {
    const path = "src/main.tsx";
    const url = `${base}/projects/${projectId}/files/${path}`;
    const put = async (text) => {
      const head = (await (await fetch(`${base}/projects/${projectId}`)).json()).head.n;
      const r = await (await fetch(`${url}?base=${head}`, { method: "PUT", body: text })).json();
      return r.checkpoint;
    };
    const announce = (cp) => room.emit({ type: "checkpoint_created", checkpoint: cp, diff: { added: [], modified: [path], deleted: [] } });
    await page.locator(`.tree button.node.file[data-path="${path}"]`).click();
    await page.locator('.tab.active[data-path="src/main.tsx"]').waitFor();
    // Clean: the agent's version replaces the buffer.
    announce(await put("// rewritten by the agent\n"));
    await page.locator(".cm-content", { hasText: "rewritten by the agent" }).waitFor({ timeout: 10_000 });
    await page.locator("#editor-status", { hasText: /Updated by checkpoint/ }).waitFor();
    // Dirty: your edits stay, and you are told the server moved on.
    await page.locator(".cm-content").click();
    await page.keyboard.press("ControlOrMeta+End");
    await page.keyboard.type("// my unsaved line");
    announce(await put("// the agent again\n"));
    await page.locator("#editor-status", { hasText: /Changed on the server/ }).waitFor({ timeout: 10_000 });
    assert.ok((await page.locator(".cm-content").innerText()).includes("my unsaved line"));
    assert.equal(await page.locator('.tab.dirty[data-path="src/main.tsx"]').count(), 1);
  });
});

test("P10 model output is sanitised: no script, no handlers, no javascript: links", async () => {
  await withArtifacts("p10-sanitise", page, async () => {
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    const n = room.turn + 1;
    room.script.push([
      { type: "assistant_delta", text: 'Hi <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">' },
      { type: "assistant_delta", text: ' <a href="javascript:window.pwned=3">click</a> [md](javascript:window.pwned=4) <b onmouseover="window.pwned=5">bold</b> [ok](https://example.com/)' },
    ]);
    await send("Be evil");
    await page.locator(`.turn[data-turn="${n}"] .turn-footer.usage`).waitFor({ timeout: 10_000 });
    const md = page.locator(`.turn[data-turn="${n}"] .md`);
    assert.equal(await md.locator("script, img, [onerror], [onmouseover]").count(), 0);
    const hrefs = await md.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    assert.ok(hrefs.every((h) => h === null || !/^javascript:/i.test(h)), JSON.stringify(hrefs));
    assert.equal(await md.locator('a[href="https://example.com/"]').getAttribute("rel"), "noopener noreferrer");
    await md.locator("b").hover();
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  });
});

test("P11 New chat asks for a new conversation and draws the divider; the transcript stays", async () => {
  await withArtifacts("p11-new-chat", page, async () => {
    await page.goto(`${base}/p/${projectId}`);
    await page.locator("#conn.open").waitFor({ timeout: 20_000 });
    const before = await page.locator(".turn").count();
    await page.locator("#new-chat").click();
    await page.locator(".new-chat-line").last().waitFor({ timeout: 20_000 });
    assert.ok(room.received.some((m) => m.type === "new_conversation"));
    assert.match(await page.locator(".new-chat-line").last().innerText(), /files stay/);
    assert.equal(await page.locator(".turn").count(), before, "earlier turns stay visible");
  });
});
