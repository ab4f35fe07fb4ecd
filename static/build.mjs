// Bundles the frontend into static/dist with esbuild; API_BASE may point at another origin.
// Code splitting keeps CodeMirror and xterm.js out of the main bundle (they load on first use);
// the closing lines report each entry's gzip size so bundle growth is visible in every build.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
// OUT_DIR lets a test build a second copy (e.g. with API_BASE set) without touching static/dist.
const out = process.env.OUT_DIR ?? join(here, "dist");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const js = await build({
  entryPoints: { app: join(here, "src/main.ts") },
  bundle: true,
  format: "esm",
  splitting: true,
  minify: true,
  sourcemap: "linked",
  target: "es2022",
  outdir: out,
  chunkNames: "chunks/[name]-[hash]",
  // xterm's stylesheet is imported as text by the lazy terminal chunk and injected there.
  loader: { ".css": "text" },
  define: { API_BASE: JSON.stringify(process.env.API_BASE ?? "") },
  metafile: true,
  logLevel: "warning",
});
await build({
  entryPoints: { app: join(here, "src/app.css") },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: "warning",
});
copyFileSync(join(here, "index.html"), join(out, "index.html"));

// Main bundle = the entry plus every chunk it imports statically (what the first paint needs).
const outputs = js.metafile.outputs;
const gz = (f) => gzipSync(readFileSync(f)).length;
const entry = Object.keys(outputs).find((k) => outputs[k].entryPoint && k.endsWith(".js"));
const seen = new Set();
const walk = (k) => {
  if (seen.has(k)) return;
  seen.add(k);
  for (const i of outputs[k].imports) if (i.kind === "import-statement") walk(i.path);
};
walk(entry);
let main = gz(join(out, "app.css"));
for (const k of seen) main += gz(k);
let lazy = 0;
for (const k of Object.keys(outputs)) if (k.endsWith(".js") && !seen.has(k)) lazy += gz(k);
// Which packages each lazy chunk carries, for tests/browser/bundle.test.mjs and the benchmark row.
const inputsOf = (k) => Object.keys(outputs[k].inputs);
writeFileSync(
  join(out, "bundle.json"),
  JSON.stringify({
    main_gzip_bytes: main,
    lazy_gzip_bytes: lazy,
    main_files: [...seen].map((k) => relative(out, k)),
    main_inputs: [...seen].flatMap(inputsOf),
    lazy_inputs: Object.keys(outputs).filter((k) => k.endsWith(".js") && !seen.has(k)).flatMap(inputsOf),
  }),
);
if (!process.env.QUIET) {
  console.log(`main bundle (js+css, gzip): ${(main / 1024).toFixed(1)} KiB in ${[...seen].map((k) => relative(out, k)).join(", ")} + app.css`);
  console.log(`lazy chunks (gzip): ${(lazy / 1024).toFixed(1)} KiB`);
}
