// Browser-test support: boots the real local stack through the `stack` binary (Azurite, VM API,
// wrangler dev, scripted LLM), drives Debian's chromium with playwright-core, probes which Worker
// features exist, and saves a screenshot plus the browser console when a step fails.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(ROOT, "test-artifacts/browser");

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Starts the stack; resolves once it printed its URLs. `push(replies)` queues LLM replies.
 * `flags`: more flags for the `stack` binary (`--oidc` runs the Worker with sign-in). */
export async function startStack(scriptFile, vars = [], flags = []) {
  const prebuilt = join(ROOT, "target/debug/stack");
  const extra = ["--script", scriptFile, ...vars.flatMap((v) => ["--var", v]), ...flags];
  const [cmd, args] =
    process.env.STACK_PREBUILT && existsSync(prebuilt)
      ? [prebuilt, extra]
      : ["cargo", ["run", "-q", "-p", "e2e", "--bin", "stack", "--", ...extra]];
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  const queued = [];
  lines.on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queued.push(l);
  });
  const next = () =>
    new Promise((resolve, reject) => {
      const q = queued.shift();
      if (q !== undefined) return resolve(q);
      const t = setTimeout(() => reject(new Error(`stack did not answer; stderr:\n${stderr.slice(-4000)}`)), 240_000);
      const exited = (c) => reject(new Error(`stack exited with ${c}; stderr:\n${stderr.slice(-4000)}`));
      waiting.push((l) => {
        clearTimeout(t);
        // Answered: this call no longer waits for the exit (one listener per call would pile up).
        child.off("exit", exited);
        resolve(l);
      });
      child.once("exit", exited);
    });
  const info = JSON.parse(await next());
  return {
    ...info,
    async push(replies) {
      child.stdin.write(JSON.stringify({ push: replies }) + "\n");
      const a = JSON.parse(await next());
      if (!a.ok) throw new Error(`stack rejected the replies: ${a.error}`);
      return a;
    },
    async remaining() {
      child.stdin.write('{"remaining":true}\n');
      return JSON.parse(await next());
    },
    stderr: () => stderr,
    async stop() {
      child.stdin.end();
      await new Promise((r) => {
        const t = setTimeout(() => {
          child.kill("SIGKILL");
          r();
        }, 15_000);
        child.once("exit", () => {
          clearTimeout(t);
          r();
        });
      });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
}

/** A page that records its console and page errors for the failure artifacts. */
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true, ...opts });
  const page = await context.newPage();
  page.consoleLog = [];
  page.on("console", (m) => page.consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => page.consoleLog.push(`[pageerror] ${e.stack ?? e.message}`));
  page.on("requestfailed", (r) => page.consoleLog.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ""}`));
  return page;
}

/** Runs a test body; on failure saves `NAME.png` and `NAME.console.txt` under test-artifacts/. */
export async function withArtifacts(name, page, fn) {
  try {
    await fn();
  } catch (e) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const base = join(ARTIFACTS, name.replace(/[^a-z0-9-]+/gi, "_"));
    try {
      await page.screenshot({ path: `${base}.png`, fullPage: true });
    } catch {
      /* the page may be gone */
    }
    writeFileSync(`${base}.console.txt`, (page.consoleLog ?? []).join("\n") + "\n");
    throw e;
  }
}

/** Which Worker features exist, asked once per run with a scratch project. */
/** `origin`: an origin the Worker was told to allow (ALLOWED_ORIGINS), for the CORS probe. */
export async function probeFeatures(base, stack, origin = "http://localhost:1") {
  const j = async (method, path, body) => {
    const r = await fetch(base + path, { method, body: body && JSON.stringify(body), headers: body ? { "content-type": "application/json" } : {} });
    return r;
  };
  const created = await (await j("POST", "/projects", { name: "probe" })).json();
  const id = created.project.id;
  const models = (await j("GET", "/api/models")).status !== 404;
  const term = await j("POST", `/projects/${id}/terminal`, { command: "true" });
  const terminal = term.status !== 404;
  await term.body?.cancel().catch(() => {});
  const preview = (await j("GET", `/projects/${id}/preview`)).status !== 404;
  const cors = (await fetch(`${base}/api/config`, { headers: { origin } })).headers.get("access-control-allow-origin") === origin;
  // The agent: a turn runs to turn_finished on its own scripted reply, or the server answers the
  // frame with an error. Waiting for the end keeps the probe from eating a later test's reply.
  const before = (await stack.remaining()).remaining;
  await stack.push([{ text: "probe ok" }]);
  const agent = await new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/projects/${id}/ws?since=0`);
    const done = (v) => {
      clearTimeout(t);
      try {
        ws.close();
      } catch {
        /* closed */
      }
      resolve(v);
    };
    let started = false;
    const t = setTimeout(() => done(started), 30000);
    ws.onopen = () => ws.send(JSON.stringify({ type: "user_message", text: "probe" }));
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.type === "turn_started") started = true;
      if (e.type === "turn_finished") done(true);
      if (e.type === "error" && !started) done(false);
    };
    ws.onerror = () => done(false);
  });
  if (!agent && (await stack.remaining()).remaining > before) {
    // Nothing consumed the probe's reply; later turns would get it, so say so loudly.
    console.error("probe: the agent did not run; its scripted reply stays queued");
  }
  return { agent, terminal, preview, models, cors };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
