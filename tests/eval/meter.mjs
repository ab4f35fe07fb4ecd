// The metering proxy: the Worker's "OpenRouter" points here, and every request is passed on,
// unchanged and streamed, to the real provider (or to the scripted LLM in CI mode). On the way
// it counts model steps and reads the usage the provider reports in each answer: prompt,
// cached and completion tokens and OpenRouter's cost. The real API key lives only in this
// process: the Worker gets a placeholder, and the proxy swaps it for the key on the way out.
// Nothing here ever prints a header.

import { createServer } from "node:http";

/** The usage one answer reported, from an OpenAI-style `usage` object (null when absent). */
export function readUsage(u) {
  if (!u || typeof u !== "object") return null;
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  return {
    prompt: num(u.prompt_tokens),
    cached: num(u.prompt_tokens_details?.cached_tokens ?? u.cache_read_input_tokens),
    completion: num(u.completion_tokens),
    cost: typeof u.cost === "number" ? u.cost : null,
  };
}

/** The usage objects in a text/event-stream body (`data:` lines), in order. */
export function usageFromSse(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^data:\s*(.*)$/.exec(line.trimEnd());
    if (!m || m[1] === "[DONE]") continue;
    try {
      const u = readUsage(JSON.parse(m[1]).usage);
      if (u) out.push(u);
    } catch {
      /* not JSON: a comment or a malformed chunk, not ours to judge */
    }
  }
  return out;
}

export class Totals {
  constructor() {
    this.steps = 0;
    this.failed = 0;
    this.prompt = 0;
    this.cached = 0;
    this.completion = 0;
    this.cost = 0;
    this.costKnown = true;
  }
  add(u) {
    this.prompt += u.prompt;
    this.cached += u.cached;
    this.completion += u.completion;
    if (u.cost === null) this.costKnown = false;
    else this.cost += u.cost;
  }
  remove(u) {
    this.prompt -= u.prompt;
    this.cached -= u.cached;
    this.completion -= u.completion;
    if (u.cost !== null) this.cost -= u.cost;
  }
  /** What changed since `before` (a copy taken earlier). */
  since(before) {
    const d = new Totals();
    for (const k of ["steps", "failed", "prompt", "cached", "completion", "cost"]) d[k] = this[k] - before[k];
    d.costKnown = this.costKnown;
    return d;
  }
  copy() {
    return Object.assign(new Totals(), this);
  }
}

const HOP = new Set(["host", "connection", "content-length", "transfer-encoding", "keep-alive", "authorization", "accept-encoding"]);

/**
 * Starts the proxy on 127.0.0.1 (a free port). `upstream` is the provider's base URL (…/v1);
 * `key`, when given, replaces the Worker's placeholder in `Authorization`.
 */
export async function startMeter({ upstream = "", key = "" } = {}) {
  const totals = new Totals();
  const state = { upstream, keyFromWorker: 0 };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const rest = req.url.replace(/^\/v1(?=\/|$)/, "");
    const isChat = req.method === "POST" && rest.startsWith("/chat/completions");
    if (isChat) totals.steps += 1;
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    if (key && String(req.headers.authorization ?? "").includes(key)) state.keyFromWorker += 1;
    if (key) headers.authorization = `Bearer ${key}`;
    else if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    let up;
    try {
      up = await fetch(state.upstream.replace(/\/+$/, "") + rest, {
        method: req.method,
        headers,
        body: ["GET", "HEAD"].includes(req.method) ? undefined : body,
        signal: abort.signal,
      });
    } catch (e) {
      if (isChat) totals.failed += 1;
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `eval meter: the provider could not be reached: ${e.cause?.code ?? e.message}` } }));
      return;
    }
    if (isChat && !up.ok) totals.failed += 1;
    const out = {};
    up.headers.forEach((v, k) => {
      // fetch already decoded the body; its length and encoding no longer apply.
      if (!["content-encoding", "content-length", "transfer-encoding", "connection"].includes(k)) out[k] = v;
    });
    res.writeHead(up.status, out);
    // Usage is counted as each line arrives, before that chunk is passed on: by the time the
    // Worker has read an answer (and ended the turn), the meter has counted it.
    const sse = (up.headers.get("content-type") ?? "").includes("text/event-stream");
    const decoder = new TextDecoder();
    let pending = "";
    let counted = null;
    const count = (u) => {
      // A provider may repeat usage within one answer; the last one is the answer's total.
      if (counted) totals.remove(counted);
      totals.add(u);
      counted = u;
    };
    try {
      for await (const c of up.body ?? []) {
        if (isChat && up.ok) {
          pending += decoder.decode(c, { stream: true });
          if (sse) {
            const cut = pending.lastIndexOf("\n");
            if (cut >= 0) {
              for (const u of usageFromSse(pending.slice(0, cut))) count(u);
              pending = pending.slice(cut + 1);
            }
          }
        }
        res.write(c);
      }
      if (isChat && up.ok) {
        if (sse) for (const u of usageFromSse(pending)) count(u);
        else {
          try {
            const u = readUsage(JSON.parse(pending).usage);
            if (u) count(u);
          } catch {
            /* not JSON */
          }
        }
      }
    } catch {
      /* the Worker or the provider hung up; what arrived is counted */
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/v1`,
    totals,
    /** Requests whose `Authorization` from the Worker already held the key (should stay 0). */
    get keyFromWorker() {
      return state.keyFromWorker;
    },
    setUpstream(u) {
      state.upstream = u;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}
