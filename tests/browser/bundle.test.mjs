// The bundle budget: the main bundle (entry + its static imports + CSS) stays under 300 KiB gzip,
// and CodeMirror and xterm.js are only in lazily loaded chunks. Reads static/dist/bundle.json,
// which `node static/build.mjs` writes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./harness.mjs";

const report = JSON.parse(readFileSync(join(ROOT, "static/dist/bundle.json"), "utf8"));

test("the main bundle is under 300 KiB gzip", () => {
  console.log(`# main bundle ${(report.main_gzip_bytes / 1024).toFixed(1)} KiB gzip, lazy ${(report.lazy_gzip_bytes / 1024).toFixed(1)} KiB`);
  assert.ok(report.main_gzip_bytes < 300 * 1024, `${report.main_gzip_bytes} bytes`);
});

test("the editor and the terminal are lazy", () => {
  for (const pkg of ["@codemirror/", "@xterm/"]) {
    assert.equal(report.main_inputs.filter((i) => i.includes(pkg)).length, 0, `${pkg} is in the main bundle`);
    assert.ok(report.lazy_inputs.some((i) => i.includes(pkg)), `${pkg} is in a lazy chunk`);
  }
});

test("markdown rendering and sanitising are bundled (no CDN)", () => {
  for (const pkg of ["marked", "dompurify", "highlight.js"]) assert.ok(report.main_inputs.some((i) => i.includes(`node_modules/${pkg}/`)), pkg);
  const html = readFileSync(join(ROOT, "static/dist/index.html"), "utf8");
  assert.doesNotMatch(html, /(src|href)="https?:/);
});
