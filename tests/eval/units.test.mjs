// Unit tests of the evaluation harness's own logic: the command line, the verdicts, the table,
// and the metering proxy (against a local upstream server, with a fake key).
// Run: node --test tests/eval/units.test.mjs (scripts/eval.sh runs it first).

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findKey } from "./leaks.mjs";
import { Totals, readUsage, startMeter, usageFromSse } from "./meter.mjs";
import { ciProblems, estimateCost, parseArgs, passed, table } from "./table.mjs";

const KNOWN = ["todo", "habits", "notes", "kanban", "shortener"];
const KEY = "sk-or-v1-unit-test-not-a-real-key";

test("--ci runs the todo request on the scripted model, with or without a key", () => {
  for (const env of [{}, { OPENROUTER_API_KEY: KEY, EVAL_MODELS: "a/b" }]) {
    const o = parseArgs(["--ci"], env, KNOWN);
    assert.equal(o.ci, true);
    assert.deepEqual(o.requests, ["todo"]);
    assert.deepEqual(o.models, []);
  }
  assert.deepEqual(parseArgs(["--ci", "--requests", "todo"], {}, KNOWN).requests, ["todo"]);
});

test("--references plays every request's reference app (or the ones named) on the scripted model", () => {
  const all = parseArgs(["--references"], {}, KNOWN);
  assert.deepEqual([all.scripted, all.ci, all.requests, all.models], [true, false, KNOWN, []]);
  assert.deepEqual(parseArgs(["--references", "--requests", "kanban"], {}, KNOWN).requests, ["kanban"]);
});

test("real runs need a key and take requests and models from the command line or EVAL_MODELS", () => {
  assert.throws(() => parseArgs([], {}, KNOWN), /OPENROUTER_API_KEY is not set.*--ci/);
  const all = parseArgs([], { OPENROUTER_API_KEY: KEY, EVAL_MODELS: " a/x , b/y ," }, KNOWN);
  assert.deepEqual(all.requests, KNOWN);
  assert.deepEqual(all.models, ["a/x", "b/y"]);
  const some = parseArgs(["--requests", "notes,kanban", "--models", "c/z", "--timeout-min", "5"], { OPENROUTER_API_KEY: KEY, EVAL_MODELS: "a/x" }, KNOWN);
  assert.deepEqual(some.requests, ["notes", "kanban"]);
  assert.deepEqual(some.models, ["c/z"]);
  assert.equal(some.timeoutMin, 5);
});

test("bad command lines get a clear error", () => {
  const env = { OPENROUTER_API_KEY: KEY };
  assert.throws(() => parseArgs(["--frobnicate"], env, KNOWN), /unknown argument "--frobnicate"/);
  assert.throws(() => parseArgs(["--requests", "todo,chess"], env, KNOWN), /unknown request "chess"; known: todo, habits/);
  assert.throws(() => parseArgs(["--models"], env, KNOWN), /--models needs a value/);
  assert.throws(() => parseArgs(["--models", "--ci"], env, KNOWN), /--models needs a value/);
  assert.throws(() => parseArgs(["--timeout-min", "soon"], env, KNOWN), /--timeout-min must be a number/);
  assert.throws(() => parseArgs(["--timeout-min", "0"], env, KNOWN), /--timeout-min/);
  assert.throws(() => parseArgs(["--ci", "--models", "a/b"], env, KNOWN), /--ci runs the scripted model/);
  assert.throws(() => parseArgs(["--ci", "--requests", "notes"], env, KNOWN), /--ci runs the todo request only/);
  assert.throws(() => parseArgs(["--ci", "--references"], env, KNOWN), /pick one/);
  assert.throws(() => parseArgs(["--references", "--models", "a/b"], env, KNOWN), /--references runs the scripted model/);
});

const good = () => ({
  request: "todo",
  model: "scripted/model-a",
  end: "done",
  finished: true,
  checks: true,
  consoleClean: true,
  smoke: true,
  usage: { steps: 9, prompt: 900, cached: 0, completion: 180, cost: 0.00378, costKnown: true },
  turnUsage: { prompt_tokens: 900, completion_tokens: 180, cost: 0.00378 },
  scriptedLeft: 0,
  wallMs: 42_400,
});

test("a run passes only when every column passed", () => {
  assert.equal(passed(good()), true);
  for (const k of ["finished", "checks", "consoleClean", "smoke"]) {
    assert.equal(passed({ ...good(), [k]: false }), false, k);
    assert.equal(passed({ ...good(), [k]: undefined }), false, `${k} unknown`);
  }
});

test("the CI verdict: the good run passes, the broken run must be caught by its smoke", () => {
  const broken = { ...good(), expectFail: true, smoke: false };
  assert.deepEqual(ciProblems([good(), broken]), []);
  assert.match(ciProblems([{ ...good(), smoke: false }])[0], /todo: not every column passed/);
  assert.match(ciProblems([{ ...good(), expectFail: true }])[0], /did not catch the broken app/);
  // A broken run that failed before its smoke ran proves nothing about the smoke.
  assert.match(ciProblems([{ ...good(), expectFail: true, finished: false, smoke: undefined, error: "boom" }])[0], /expected the smoke to fail.*boom/);
});

test("the CI verdict holds the meter to the Worker's own accounting and the whole transcript", () => {
  assert.match(ciProblems([{ ...good(), usage: { ...good().usage, steps: 0 } }])[0], /counted no model steps/);
  assert.match(ciProblems([{ ...good(), usage: { ...good().usage, prompt: 800 } }])[0], /meter's tokens \(800 prompt, 180 completion\) differ from the turn's \(900, 180\)/);
  assert.match(ciProblems([{ ...good(), scriptedLeft: 2 }])[0], /2 scripted replies were never asked for/);
});

test("the table has one row per run and says what is unknown", () => {
  const t = table([good(), { request: "notes", model: "a/x", end: "step_cap", finished: false, consoleClean: false, consoleErrors: ["x", "y"], usage: { steps: 3, prompt: 12345, cached: 0, completion: 6, cost: 0, costKnown: false }, wallMs: 1000 }]);
  const lines = t.split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^\| request +\| model +\| finished +\| checks green \| console clean \| smoke \| steps \| prompt tok \| cached tok \| completion tok \| cost +\| wall \|$/);
  assert.match(lines[2], /\| todo +\| scripted\/model-a \| yes +\| yes +\| yes +\| yes +\| 9 +\| 900 +\| 0 +\| 180 +\| \$0\.0038 \| 42 s \|/);
  assert.match(lines[3], /\| notes +\| a\/x +\| NO \(step_cap\) \| – +\| NO \(2\) +\| – +\| 3 +\| 12,345 +\| 0 +\| 6 +\| – +\| 1 s +\|/);
  assert.equal(new Set(lines.map((l) => l.length)).size, 1, "columns line up");
});

test("without a reported cost, the cost is estimated from the /models prices, cached tokens at the cache price", () => {
  const usage = { prompt: 1000, cached: 800, completion: 100 };
  const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
  close(estimateCost(usage, { prompt: "0.000003", completion: "0.000015", input_cache_read: "0.0000003" }), 200 * 3e-6 + 800 * 3e-7 + 100 * 15e-6);
  close(estimateCost(usage, { prompt: "0.000003", completion: "0.000015" }), 1000 * 3e-6 + 100 * 15e-6);
  assert.equal(estimateCost(usage, {}), null);
  assert.equal(estimateCost(usage, undefined), null);
  assert.equal(estimateCost(usage, { prompt: "", completion: "0.1" }), null);
  const t = table([{ ...good(), usage: { ...good().usage, costKnown: false }, costEstimate: 0.01234 }]);
  assert.match(t, /\| ~\$0\.0123 \|/);
});

test("usage is read from OpenAI and OpenRouter shapes", () => {
  assert.deepEqual(readUsage({ prompt_tokens: 10, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 8 }, cost: 0.01 }), {
    prompt: 10,
    cached: 8,
    completion: 2,
    cost: 0.01,
  });
  assert.deepEqual(readUsage({ prompt_tokens: 10, completion_tokens: 2 }), { prompt: 10, cached: 0, completion: 2, cost: null });
  assert.equal(readUsage(null), null);
  const sse = [
    ": OPENROUTER PROCESSING",
    'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}',
    "data: {not json",
    'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"cost":0.5}}',
    "data: [DONE]",
  ].join("\n");
  assert.deepEqual(usageFromSse(sse), [{ prompt: 5, cached: 0, completion: 1, cost: 0.5 }]);
});

test("totals subtract what came before and lose the cost once one answer lacks it", () => {
  const t = new Totals();
  t.add({ prompt: 10, cached: 4, completion: 1, cost: 0.1 });
  const before = t.copy();
  t.steps = 2;
  t.add({ prompt: 20, cached: 0, completion: 2, cost: null });
  const d = t.since(before);
  assert.deepEqual([d.steps, d.prompt, d.cached, d.completion, d.cost, d.costKnown], [2, 20, 0, 2, 0, false]);
});

/** A local upstream that answers chat completions with a stream and records what it got. */
async function upstream() {
  const seen = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url, authorization: req.headers.authorization });
    if (req.url === "/api/v1/models") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end('{"data":[]}');
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write('data: {"choices":[{"delta":{"content":"hel"}}]}\n\ndata: {"choices":[{"delta":{"content":"lo"}}]}\n\n');
    // Usage split across two writes: the meter must join the line.
    res.write('data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,');
    res.end('"prompt_tokens_details":{"cached_tokens":60},"cost":0.002}}\n\ndata: [DONE]\n\n');
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { seen, url: `http://127.0.0.1:${server.address().port}/api/v1`, close: () => new Promise((r) => server.close(r)) };
}

test("the meter passes requests on with the real key, streams answers back unchanged and counts their usage", async () => {
  const up = await upstream();
  const meter = await startMeter({ upstream: up.url, key: KEY });
  try {
    const r = await fetch(`${meter.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer placeholder", "content-type": "application/json" },
      body: JSON.stringify({ model: "a/x", stream: true, messages: [] }),
    });
    const body = await r.text();
    assert.equal(r.status, 200);
    assert.match(body, /"content":"hel"/);
    assert.match(body, /data: \[DONE\]/);
    assert.ok(!body.includes(KEY) && ![...r.headers.values()].some((v) => v.includes(KEY)), "the key never comes back");
    const models = await fetch(`${meter.url}/models`);
    assert.equal(await models.text(), '{"data":[]}');
    assert.deepEqual(
      up.seen.map((s) => [s.url, s.authorization]),
      [
        ["/api/v1/chat/completions", `Bearer ${KEY}`],
        ["/api/v1/models", `Bearer ${KEY}`],
      ],
    );
    const t = meter.totals;
    assert.deepEqual([t.steps, t.failed, t.prompt, t.cached, t.completion, t.cost], [1, 0, 100, 60, 20, 0.002]);
    assert.equal(meter.keyFromWorker, 0);
    // A Worker that somehow had the key would be noticed (the leak scan reports it).
    await (await fetch(`${meter.url}/models`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    assert.equal(meter.keyFromWorker, 1);
  } finally {
    await meter.close();
    await up.close();
  }
});

test("without a key the meter passes the Worker's own header; an unreachable provider is a 502 that names no key", async () => {
  const up = await upstream();
  const meter = await startMeter({ upstream: up.url });
  try {
    await (await fetch(`${meter.url}/chat/completions`, { method: "POST", headers: { authorization: "Bearer from-worker" }, body: "{}" })).text();
    assert.equal(up.seen[0].authorization, "Bearer from-worker");
  } finally {
    await meter.close();
    await up.close();
  }
  const dead = await startMeter({ upstream: up.url, key: KEY }); // the upstream is closed now
  try {
    const r = await fetch(`${dead.url}/chat/completions`, { method: "POST", body: "{}" });
    const text = await r.text();
    assert.equal(r.status, 502);
    assert.match(text, /the provider could not be reached/);
    assert.ok(!text.includes(KEY));
    assert.deepEqual([dead.totals.steps, dead.totals.failed], [1, 1]);
  } finally {
    await dead.close();
  }
});

test("the leak scan finds the key in another process, a log, an event or a Worker request, and nowhere else", async () => {
  const secret = `sk-or-v1-leak-test-${process.pid}-${Date.now()}`;
  const dir = mkdtempSync(join(tmpdir(), "eval-leaks-"));
  try {
    mkdirSync(join(dir, "azurite"));
    writeFileSync(join(dir, "wrangler.log"), "ready on http://127.0.0.1:1\n");
    writeFileSync(join(dir, "azurite", "debug.log"), "nothing\n");
    assert.deepEqual(findKey(secret, { stateDir: dir, events: [{ type: "status", message: "ok" }] }), []);

    writeFileSync(join(dir, "azurite", "debug.log"), `authorization: Bearer ${secret}\n`);
    const child = spawn("sleep", ["30"], { env: { PATH: process.env.PATH, LEAKED: secret }, stdio: "ignore" });
    try {
      const found = findKey(secret, { stateDir: dir, events: [{ type: "tool_output", data: `key=${secret}` }], keyFromWorker: 2 });
      assert.deepEqual(found, [`/proc/${child.pid}/environ`, join(dir, "azurite", "debug.log"), "the project's WebSocket events", "2 requests from the Worker to the meter"]);
    } finally {
      child.kill("SIGKILL");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
