// `make eval`: the evaluation harness. Boots the real local stack once (Azurite, the VM API,
// `wrangler dev`), and for each app request and model creates a project, sends the request
// over the project's socket, waits for the turn, then opens the live preview (with its token)
// in Debian's chromium and runs the request's smoke script, and runs the template's checks.
// Prints one table: finished, checks green, console clean, smoke passed, steps, tokens, cost,
// wall time. The Worker's "OpenRouter" is the metering proxy (meter.mjs), which passes every
// request on to the real provider (or, with --ci, to the scripted model) and counts what each
// answer used. Usage: see USAGE in table.mjs.

import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT, launchBrowser, startStack } from "../browser/harness.mjs";
import { findKey } from "./leaks.mjs";
import { startMeter } from "./meter.mjs";
import { REQUESTS } from "./requests/index.mjs";
import { referenceTranscript, todoTranscript } from "./scripted.mjs";
import { steps } from "./smoke.mjs";
import { USAGE, ciProblems, estimateCost, parseArgs, passed, table } from "./table.mjs";

const ARTIFACTS = join(ROOT, "test-artifacts/eval");
const SCRIPTED_MODEL = "scripted/model-a";
/** What the Worker gets instead of the key; the meter swaps in the real one. */
const PLACEHOLDER_KEY = "eval-meter-holds-the-key";

const log = (m) => process.stderr.write(`[eval] ${m}\n`);

let opts;
try {
  opts = parseArgs(
    process.argv.slice(2),
    process.env,
    REQUESTS.map((r) => r.id),
  );
} catch (e) {
  process.stderr.write(`error: ${e.message}\n${USAGE}\n`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE + "\n");
  process.exit(0);
}

// The key lives in this process's memory only: no child (the stack, chromium) inherits it.
// In CI mode a random canary plays the key, sent to the scripted model the same way, so the
// leak scan at the end proves the real key's path.
const key = opts.scripted ? `sk-or-v1-eval-canary-${randomBytes(16).toString("hex")}` : process.env.OPENROUTER_API_KEY;
for (const k of ["OPENROUTER_API_KEY", "GROQ_API_KEY", "LLM_API_KEY"]) delete process.env[k];
const meter = await startMeter({
  upstream: opts.scripted ? "" : process.env.OPENROUTER_BASE_URL || "https://openrouter.ai/api/v1",
  key,
});
const vars = [
  "VERIFY_FIX_ROUNDS=", // empty: the Worker's own default (the stack binary turns it off)
  "LLM_BASE_URL=",
  `OPENROUTER_API_KEY=${PLACEHOLDER_KEY}`,
  `OPENROUTER_BASE_URL=${meter.url}`,
];
mkdirSync(ARTIFACTS, { recursive: true });
const emptyScript = join(ARTIFACTS, "empty-script.json");
writeFileSync(emptyScript, "[]\n");

log("starting the stack (Azurite, VM API, wrangler dev)");
let stack;
try {
  stack = await startStack(emptyScript, vars);
} catch (e) {
  log(`the stack did not start: ${e.message}`);
  await meter.close();
  process.exit(2);
}
if (opts.scripted) meter.setUpstream(stack.llm_url);
const base = stack.worker_url;

async function api(method, path, body, timeoutMs = 60_000) {
  const r = await fetch(base + path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${path} answered ${r.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  if (!r.ok) throw new Error(`${method} ${path} answered ${r.status}: ${json.error?.message ?? text.slice(0, 300)}`);
  return json;
}

/**
 * Sends `text` on the project's socket and resolves with the turn's end (or a timeout). A
 * socket that drops mid-turn is reopened with `?since=` the last event seen (the log replays
 * what was missed), up to 5 times.
 */
function runTurn(id, text, model, timeoutMs) {
  return new Promise((resolve, reject) => {
    let ws;
    let turnId = null;
    let stopped = false;
    let sent = false;
    let done = false;
    let lastSeq = 0;
    let reconnects = 0;
    const events = [];
    const finish = (v, err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(hard);
      try {
        ws.close();
      } catch {
        /* closed */
      }
      if (err) reject(err);
      else resolve(v);
    };
    // Past the deadline the turn is stopped, as a person would press stop; it then gets a
    // minute to end before the harness gives up on it.
    const timer = setTimeout(() => {
      stopped = true;
      log(`the turn passed ${opts.timeoutMin} min: stopping it`);
      try {
        ws.send(JSON.stringify({ type: "stop" }));
      } catch {
        /* reconnecting; the hard deadline still holds */
      }
    }, timeoutMs);
    const hard = setTimeout(() => finish(null, new Error("the turn did not end within a minute of being stopped")), timeoutMs + 60_000);
    const connect = () => {
      ws = new WebSocket(`${base.replace(/^http/, "ws")}/projects/${id}/ws${sent ? `?since=${lastSeq}` : ""}`);
      ws.onmessage = (m) => {
        const e = JSON.parse(m.data);
        if (e.seq > lastSeq) lastSeq = e.seq;
        if (e.type === "hello" && !sent) {
          sent = true;
          ws.send(JSON.stringify({ type: "user_message", text, ...(model ? { model } : {}) }));
        } else if (e.type === "turn_started" && turnId === null) {
          // A new project: the first turn is this message's.
          turnId = e.turn_id;
          model = e.model || model;
        } else if (e.type === "error" && turnId === null) finish(null, new Error(`the server refused the message: ${e.message}`));
        else if (e.type === "status" && e.turn_id === turnId) log(`  status: ${e.message}`);
        else if (e.type === "turn_finished" && e.turn_id === turnId) finish({ ...e, model, timedOut: stopped, events });
        if (turnId !== null && e.turn_id === turnId) events.push(e);
      };
      ws.onclose = () => {
        if (done) return;
        if (!sent || reconnects >= 5) return finish(null, new Error("the project socket closed before the turn ended"));
        reconnects += 1;
        log(`  the socket closed mid-turn; reopening it (since=${lastSeq})`);
        setTimeout(connect, 1000);
      };
    };
    connect();
  });
}

/** The VM API secret of the test stack (fixed in tests/e2e/src/stack.rs; not a real secret). */
const VM_TEST_SECRET = "e2e-secret-0123456789abcdef";

/**
 * A request to the stack's VM API, signed as core's `vm_auth::request_headers` does: the
 * request key is HKDF-Expand of the secret (one block: HMAC(secret, info || 0x01)), and the
 * signature covers method, path and query, timestamp, the body's sha256 and the acting user
 * (none here).
 */
async function vmApi(method, path) {
  const pathAndQuery = `${path}${path.includes("?") ? "&" : "?"}or_nonce=${randomBytes(8).toString("hex")}`;
  const ts = Math.floor(Date.now() / 1000);
  const bodyHash = createHash("sha256").update("").digest("hex");
  const key = createHmac("sha256", VM_TEST_SECRET)
    .update(Buffer.concat([Buffer.from("open-replit vm-api request signature v1"), Buffer.from([1])]))
    .digest();
  const sig = createHmac("sha256", key).update(`${method}\n${pathAndQuery}\n${ts}\n${bodyHash}\n`).digest("hex");
  const r = await fetch(stack.vm_url + pathAndQuery, {
    method,
    headers: { "x-or-timestamp": String(ts), "x-or-signature": sig, "x-or-body-sha256": bodyHash },
    signal: AbortSignal.timeout(30_000),
  });
  if (!r.ok) throw new Error(`${method} ${path} on the VM API answered ${r.status}: ${(await r.text()).slice(0, 200)}`);
  return r.json();
}

/**
 * Stops a finished run's dev servers, so a long evaluation does not keep every app of every
 * model running at once. A failure is logged and is no result of the run, but the scripted
 * modes (which test the harness itself) fail on it.
 */
const stopFailures = [];
async function stopDevServers(id) {
  try {
    const { processes } = await vmApi("GET", `/projects/${id}/processes`);
    const running = processes.filter((p) => p.status === "running");
    for (const p of running) await vmApi("DELETE", `/projects/${id}/processes/${p.name}`);
    log(`stopped the dev servers of ${id} (${running.map((p) => p.name).join(", ") || "none running"})`);
  } catch (e) {
    log(`could not stop the dev servers of ${id}: ${e.message}`);
    stopFailures.push(`could not stop the dev servers of ${id}: ${e.message}`);
  }
}

/** Runs the template's checks through the project's terminal; returns the names that failed. */
async function runChecks(id, template) {
  const manifest = JSON.parse(readFileSync(join(ROOT, "templates", template, "template.json"), "utf8"));
  const failed = [];
  for (const c of manifest.check ?? []) {
    const r = await fetch(`${base}/projects/${id}/terminal`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: c.command, cwd: c.cwd ?? "", timeout_s: 300 }),
      signal: AbortSignal.timeout(330_000),
    });
    const lines = (await r.text()).split("\n").filter(Boolean);
    const end = lines.map((l) => JSON.parse(l)).findLast((e) => e.type === "exit" || e.type === "error");
    if (!r.ok || end?.type !== "exit" || end.exit_code !== 0 || end.timed_out) failed.push(c.name);
  }
  return failed;
}

/** Opens the live preview in a fresh browser context and runs the request's smoke script. */
async function runSmoke(browser, req, url, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  const t = steps();
  let error = null;
  try {
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: 60_000 });
    await req.smoke(page, t);
  } catch (e) {
    error = String(e.message ?? e).split("\n")[0];
    const file = join(ARTIFACTS, name.replace(/[^a-z0-9-]+/gi, "_"));
    await page.screenshot({ path: `${file}.png`, fullPage: true }).catch(() => {});
    writeFileSync(`${file}.html`, await page.content().catch(() => ""));
  }
  await context.close();
  return { smoke: error === null, smokeError: error, smokeSteps: t.done, consoleErrors };
}

async function runOne(browser, req, model, { transcript, expectFail = false } = {}) {
  const name = `${req.id} ${model}${expectFail ? " broken" : ""}`;
  const r = { request: req.id, model, expectFail };
  log(`${name}: starting`);
  // The previous run's dev servers stop now; the last run's stay up for the leak scan.
  if (lastProject) await stopDevServers(lastProject);
  const before = meter.totals.copy();
  try {
    if (transcript) await stack.push(transcript);
    const { project } = await api("POST", "/projects", { name: `eval ${req.id}`, template: req.template });
    r.project = lastProject = project.id;
    const t0 = Date.now();
    const turn = await runTurn(project.id, req.prompt, model, opts.timeoutMin * 60_000);
    r.wallMs = Date.now() - t0;
    r.end = turn.timedOut ? "timeout" : turn.end;
    r.finished = turn.end === "done" && !turn.timedOut;
    r.turnUsage = turn.usage;
    r.message = turn.message;
    allEvents.push(...turn.events);
    if (turn.model) r.model = turn.model;
    r.usage = { ...meter.totals.since(before) };
    if (!r.usage.costKnown) r.costEstimate = estimateCost(r.usage, pricing(r.model)) ?? undefined;
    if (transcript) r.scriptedLeft = (await stack.remaining()).remaining;
    log(`${name}: turn ended (${r.end}) after ${Math.round(r.wallMs / 1000)} s`);

    let preview = await api("GET", `/projects/${project.id}/preview`);
    if (!preview.running) {
      // What a person's "Start the app" button does.
      log(`${name}: the preview is not running; starting it`);
      preview = await api("POST", `/projects/${project.id}/preview/start`, {}, 600_000).catch((e) => ({ error: e.message }));
    }
    if (!preview.running || !preview.url) {
      r.smoke = false;
      r.smokeError = `the preview does not run: ${preview.error ?? "no URL"}`;
    } else {
      Object.assign(r, await runSmoke(browser, req, preview.url, name));
      r.consoleClean = r.consoleErrors.length === 0;
    }
    log(`${name}: smoke ${r.smoke ? "passed" : `failed: ${r.smokeError}`}`);
    r.failedChecks = await runChecks(project.id, req.template);
    r.checks = r.failedChecks.length === 0;
    log(`${name}: checks ${r.checks ? "green" : `failed: ${r.failedChecks.join(", ")}`}`);
  } catch (e) {
    r.error = String(e.message ?? e);
    r.usage ??= { ...meter.totals.since(before) };
    log(`${name}: ${r.error}`);
  }
  return r;
}

const results = [];
const allEvents = [];
let lastProject = null;
/** The provider's `/models` prices of a model (real runs). */
let pricing = () => undefined;
let status = 0;
let leaks = [];
const browser = await launchBrowser();
try {
  if (opts.ci) {
    const todo = REQUESTS.find((q) => q.id === "todo");
    results.push(await runOne(browser, todo, SCRIPTED_MODEL, { transcript: todoTranscript() }));
    results.push(await runOne(browser, todo, SCRIPTED_MODEL, { transcript: todoTranscript({ broken: true }), expectFail: true }));
  } else if (opts.references) {
    for (const id of opts.requests) {
      results.push(await runOne(browser, REQUESTS.find((q) => q.id === id), SCRIPTED_MODEL, { transcript: referenceTranscript(id) }));
    }
  } else {
    let models = opts.models;
    if (!models.length) models = [(await api("GET", "/api/config")).llm.default_model];
    // The provider's prices, for answers that report no cost (through the meter, which holds
    // the key; not counted as steps).
    const prices = new Map();
    try {
      const listed = await (await fetch(`${meter.url}/models`, { signal: AbortSignal.timeout(30_000) })).json();
      for (const m of listed.data ?? []) if (m.pricing) prices.set(m.id, m.pricing);
    } catch (e) {
      log(`no prices from the provider's /models (${e.message}); costs the answers do not report stay blank`);
    }
    pricing = (model) => prices.get(model);
    for (const id of opts.requests) {
      for (const model of models) results.push(await runOne(browser, REQUESTS.find((q) => q.id === id), model));
    }
  }
  // While every process of the stack (dev servers included) still runs.
  leaks = findKey(key, { stateDir: stack.state_dir, events: allEvents, keyFromWorker: meter.keyFromWorker });
} finally {
  await browser.close();
  await stack.stop();
  await meter.close();
}

process.stdout.write(`\n${table(results)}\n\n`);
for (const r of results) {
  const why = [
    r.error && `error: ${r.error}`,
    r.end && r.end !== "done" && `turn ended: ${r.end}${r.message ? ` (${r.message})` : ""}`,
    r.smokeError && `smoke: ${r.smokeError}`,
    r.failedChecks?.length && `failed checks: ${r.failedChecks.join(", ")}`,
    r.consoleErrors?.length && `console: ${r.consoleErrors.slice(0, 3).join(" | ").slice(0, 500)}`,
  ].filter(Boolean);
  if (why.length) process.stdout.write(`${r.request} / ${r.model}${r.expectFail ? " (broken on purpose)" : ""}:\n  ${why.join("\n  ")}\n`);
}
const jsonFile = opts.json || join(ARTIFACTS, "results.json");
mkdirSync(dirname(jsonFile), { recursive: true });
writeFileSync(jsonFile, JSON.stringify(results, null, 2) + "\n");
process.stdout.write(`results: ${jsonFile}\n`);

if (leaks.length) {
  process.stdout.write(`THE API KEY LEAKED to: ${leaks.join(", ")}\n`);
  status = 1;
}
if (opts.scripted) {
  const problems = [...ciProblems(results), ...stopFailures];
  if (problems.length) {
    process.stdout.write(`eval ${opts.ci ? "--ci" : "--references"} FAILED:\n  ${problems.join("\n  ")}\n`);
    status = 1;
  } else {
    if (!leaks.length) {
      process.stdout.write(
        opts.ci
          ? "eval --ci passed: the scripted todo app passed every column, the broken one was caught, the key leaked nowhere\n"
          : "eval --references passed: every reference app passed every column, the key leaked nowhere\n",
      );
    }
  }
} else {
  process.stdout.write(`${results.filter(passed).length} of ${results.length} runs passed every column\n`);
}
process.exit(status);
