// The scripted model's transcripts for the CI mode: the golden path's todo app (the files of
// tests/e2e/fixtures/golden, with the bug that test plants already fixed), written the way a
// model writes it, and the same app with a frontend that is broken on purpose. Replies are in
// the shorthand of the `stack` binary (`{"tools": [[name, args]], "text"?}`, `{"text"}`).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../browser/harness.mjs";

const golden = (f) => readFileSync(join(ROOT, "tests/e2e/fixtures/golden", f), "utf8");

/** `s` with each `[from, to]` replaced once; throws when a `from` is missing (fixture drift). */
function patch(s, pairs) {
  for (const [from, to] of pairs) {
    if (!s.includes(from)) throw new Error(`scripted transcript: ${JSON.stringify(from)} is no longer in the golden fixture`);
    s = s.replace(from, to);
  }
  return s;
}

/** The golden main.py with its planted bug fixed the way the golden test's fix round does. */
export function goldenMain() {
  return patch(golden("main_buggy.py"), [
    ["from app.validators import clean_title\n", ""],
    [
      'app = FastAPI(title="Todo API", lifespan=lifespan)',
      'def clean_title(title: str) -> str:\n    return " ".join(title.split())\n\n\napp = FastAPI(title="Todo API", lifespan=lifespan)',
    ],
  ]);
}

/** The todo transcript; `broken` swaps in a frontend that never saves (tests the harness). */
export function todoTranscript({ broken = false } = {}) {
  const app = broken ? readFileSync(join(ROOT, "tests/eval/fixtures/todo-broken-App.tsx"), "utf8") : golden("App.tsx");
  return [
    { text: "Plan: a `todos` table, GET/POST/PATCH /api/todos, and a React list with an add form.\n", tools: [["list_files", {}]] },
    { tools: [["read_file", { path: "backend/app/main.py" }], ["read_file", { path: "backend/app/db.py" }]] },
    { tools: [["write_file", { path: "backend/app/db.py", content: golden("db.py") }]] },
    { tools: [["write_file", { path: "backend/app/main.py", content: goldenMain() }]] },
    { tools: [["write_file", { path: "backend/tests/test_api.py", content: golden("test_api.py") }]] },
    { tools: [["write_file", { path: "frontend/src/App.tsx", content: app }]] },
    {
      tools: [["edit_file", { path: "frontend/index.html", edits: [{ search: "<title>My App</title>", replace: "<title>Todos</title>" }] }]],
    },
    { tools: [["start_preview", {}]] },
    { text: "Your todo app is ready: add todos and tick them off; they are saved in SQLite." },
  ];
}

/**
 * The hand-written reference app of a request, written the way a model writes it: proof that
 * the request's smoke script, its checks and the harness can all pass (`--references`).
 */
export function referenceTranscript(id) {
  if (id === "todo") return todoTranscript();
  const file = (name) => readFileSync(join(ROOT, "tests/eval/fixtures", id, name), "utf8");
  return [
    { text: `Plan: the ${id} reference app.\n`, tools: [["write_file", { path: "backend/app/main.py", content: file("main.py") }]] },
    { tools: [["write_file", { path: "backend/tests/test_api.py", content: file("test_api.py") }]] },
    { tools: [["write_file", { path: "frontend/src/App.tsx", content: file("App.tsx") }]] },
    { tools: [["start_preview", {}]] },
    { text: "Done: the app is running." },
  ];
}
