// The leak scan of `make eval`: after the runs, while every process of the stack still runs,
// it looks for the API key everywhere it must not be.

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * Where the key shows up outside this process: any other process's environment or command
 * line, the stack's logs (its state directory, two levels deep), a turn's events, or a request
 * from the Worker to the meter (`keyFromWorker`, the meter's count). Empty when it leaked
 * nowhere.
 */
export function findKey(secret, { stateDir = "", events = [], keyFromWorker = 0 } = {}) {
  const found = [];
  // This process and its ancestors (`OPENROUTER_API_KEY=… make eval`) hold the key by right.
  const mine = new Set();
  for (let pid = process.pid; pid > 1 && !mine.has(pid); ) {
    mine.add(pid);
    try {
      pid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[1]);
    } catch {
      break;
    }
  }
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    if (mine.has(Number(pid))) continue;
    for (const f of ["environ", "cmdline"]) {
      try {
        if (readFileSync(`/proc/${pid}/${f}`).includes(secret)) found.push(`/proc/${pid}/${f}`);
      } catch {
        /* gone, or not ours to read */
      }
    }
  }
  const scan = (dir, depth) => {
    let entries = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory() && depth > 0) scan(p, depth - 1);
      else if (e.isFile() && e.name.endsWith(".log") && readFileSync(p).includes(secret)) found.push(p);
    }
  };
  if (stateDir) scan(stateDir, 2);
  if (events.some((e) => JSON.stringify(e).includes(secret))) found.push("the project's WebSocket events");
  if (keyFromWorker > 0) found.push(`${keyFromWorker} requests from the Worker to the meter`);
  return found;
}
