// Pure parts of the evaluation: the command line, one run's verdict and the results table.
// No I/O here, so table.test.mjs can hold every rule.

export const USAGE = `usage: scripts/eval.sh [--ci | --references] [--requests id,id] [--models id,id] [--timeout-min N] [--json FILE]
  --ci           the todo request against the scripted model (no key needed), plus a broken
                 todo app that the harness must report as failed; exits 1 unless both hold
  --references   each request's hand-written reference app on the scripted model (no key
                 needed); exits 1 unless every one passes every column
  --requests     which requests (default: all): todo, habits, notes, kanban, shortener
  --models       OpenRouter model ids (default: $EVAL_MODELS, else the Worker's default model)
  --timeout-min  minutes one turn may take before it is stopped (default 20)
  --json FILE    also write every result as JSON (default test-artifacts/eval/results.json)
Without --ci, OPENROUTER_API_KEY must be set (OPENROUTER_BASE_URL overrides the provider URL).`;

const splitList = (s) =>
  String(s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** Parses argv (without node and the script) and the environment; throws on bad input. */
export function parseArgs(argv, env, knownRequests) {
  const o = { ci: false, references: false, scripted: false, requests: [], models: splitList(env.EVAL_MODELS), timeoutMin: 20, json: "" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--ci") o.ci = true;
    else if (a === "--references") o.references = true;
    else if (a === "--requests") o.requests = splitList(value());
    else if (a === "--models") {
      o.models = splitList(value());
      o.modelsGiven = true;
    }
    else if (a === "--timeout-min") {
      const n = Number(value());
      if (!Number.isFinite(n) || n <= 0 || n > 240) throw new Error("--timeout-min must be a number of minutes between 0 and 240");
      o.timeoutMin = n;
    } else if (a === "--json") o.json = value();
    else if (a === "-h" || a === "--help") o.help = true;
    else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  for (const r of o.requests) {
    if (!knownRequests.includes(r)) throw new Error(`unknown request ${JSON.stringify(r)}; known: ${knownRequests.join(", ")}`);
  }
  if (o.ci && o.references) throw new Error("--ci and --references are two different runs; pick one");
  if (o.ci || o.references) {
    const flag = o.ci ? "--ci" : "--references";
    if (o.ci && o.requests.length && o.requests.join() !== "todo") throw new Error("--ci runs the todo request only");
    if (o.modelsGiven) throw new Error(`${flag} runs the scripted model; --models is for real models`);
    o.scripted = true;
    o.requests = o.ci ? ["todo"] : o.requests.length ? o.requests : [...knownRequests];
    o.models = [];
  } else {
    if (!env.OPENROUTER_API_KEY) throw new Error("OPENROUTER_API_KEY is not set: set it to measure real models, or pass --ci for the scripted model");
    if (!o.requests.length) o.requests = [...knownRequests];
  }
  return o;
}

/** Did the run pass every column? */
export function passed(r) {
  return r.finished === true && r.checks === true && r.consoleClean === true && r.smoke === true;
}

const yes = (v) => (v === true ? "yes" : v === false ? "NO" : "–");
const int = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");
const money = (r) =>
  r.usage && r.usage.costKnown ? `$${r.usage.cost.toFixed(4)}` : typeof r.costEstimate === "number" ? `~$${r.costEstimate.toFixed(4)}` : "–";

/**
 * The cost of `usage` at a model's `/models` prices (OpenRouter's `pricing`: USD per token, as
 * strings; cached prompt tokens at `input_cache_read` when listed), for answers that reported
 * no cost. Null without prices.
 */
export function estimateCost(usage, pricing) {
  const n = (v) => (v === undefined || v === null || v === "" ? NaN : Number(v));
  const prompt = n(pricing?.prompt);
  const completion = n(pricing?.completion);
  if (!usage || !Number.isFinite(prompt) || !Number.isFinite(completion)) return null;
  const cacheRead = Number.isFinite(n(pricing.input_cache_read)) ? n(pricing.input_cache_read) : prompt;
  return (usage.prompt - usage.cached) * prompt + usage.cached * cacheRead + usage.completion * completion;
}
const secs = (ms) => (typeof ms === "number" ? `${Math.round(ms / 1000)} s` : "–");

export const COLUMNS = ["request", "model", "finished", "checks green", "console clean", "smoke", "steps", "prompt tok", "cached tok", "completion tok", "cost", "wall"];

/** One row of cells for a result. */
export function row(r) {
  const u = r.usage ?? {};
  return [
    r.request + (r.expectFail ? " (broken on purpose)" : ""),
    r.model,
    r.end && r.end !== "done" ? `NO (${r.end})` : yes(r.finished),
    yes(r.checks),
    r.consoleClean === false ? `NO (${r.consoleErrors?.length ?? 0})` : yes(r.consoleClean),
    yes(r.smoke),
    int(u.steps),
    int(u.prompt),
    int(u.cached),
    int(u.completion),
    money(r),
    secs(r.wallMs),
  ];
}

/** A Markdown table of the results (readable as plain text too). */
export function table(results) {
  const rows = [COLUMNS, ...results.map(row)];
  const w = COLUMNS.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(w[i])).join(" | ")} |`;
  return [line(rows[0]), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

/**
 * The CI verdict: every expected-good run passed every column, every broken-on-purpose run was
 * caught, and the meter saw exactly what the Worker reported. Returns the reasons it failed.
 */
export function ciProblems(results) {
  const problems = [];
  for (const r of results) {
    const name = `${r.request}${r.expectFail ? " (broken on purpose)" : ""}`;
    if (r.expectFail) {
      if (passed(r)) problems.push(`${name}: the harness did not catch the broken app`);
      else if (r.smoke !== false) problems.push(`${name}: expected the smoke to fail and it did not run (${r.error ?? "no error recorded"})`);
    } else if (!passed(r)) {
      problems.push(`${name}: not every column passed${r.error ? `: ${r.error}` : ""}`);
    }
    const u = r.usage;
    if (!u || !(u.steps > 0)) problems.push(`${name}: the meter counted no model steps`);
    else if (r.turnUsage && (r.turnUsage.prompt_tokens !== u.prompt || r.turnUsage.completion_tokens !== u.completion)) {
      problems.push(
        `${name}: the meter's tokens (${u.prompt} prompt, ${u.completion} completion) differ from the turn's (${r.turnUsage.prompt_tokens}, ${r.turnUsage.completion_tokens})`,
      );
    }
    if (r.scriptedLeft !== undefined && r.scriptedLeft !== 0) problems.push(`${name}: ${r.scriptedLeft} scripted replies were never asked for`);
  }
  return problems;
}
