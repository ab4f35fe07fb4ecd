// Injected by the VM API's preview proxy at the top of every HTML page of a project's preview.
// It reports uncaught errors, unhandled promise rejections, console.error calls, failed
// resource loads and each page load to the project (same origin, the preview cookie), so the
// agent's verify loop sees what the browser saw. It never changes how the page behaves.
(() => {
  if (window.__openReplitCapture) return;
  window.__openReplitCapture = true;
  const endpoint = "/__open_replit/report";
  let budget = 50; // reports per page load
  const text = (v) => {
    try {
      if (v instanceof Error) return v.stack || String(v);
      if (typeof v === "string") return v;
      return JSON.stringify(v);
    } catch (_) {
      return String(v);
    }
  };
  const send = (r) => {
    if (r.kind !== "load" && budget-- <= 0) return;
    r.url = location.pathname + location.search;
    const body = JSON.stringify(r);
    try {
      const blob = new Blob([body], { type: "application/json" });
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, blob)) return;
      fetch(endpoint, { method: "POST", body, headers: { "content-type": "application/json" }, keepalive: true, credentials: "same-origin" }).catch(() => {});
    } catch (_) {
      /* reporting must never break the page */
    }
  };
  addEventListener(
    "error",
    (e) => {
      const t = e.target;
      if (t && t !== window && (t.src || t.href)) {
        send({ kind: "resource", message: `failed to load ${t.tagName ? t.tagName.toLowerCase() : "resource"} ${t.src || t.href}` });
        return;
      }
      send({
        kind: "error",
        message: String(e.message || (e.error && e.error.message) || "error"),
        source: e.filename || "",
        line: e.lineno || 0,
        column: e.colno || 0,
        stack: e.error && e.error.stack ? String(e.error.stack) : "",
      });
    },
    true,
  );
  addEventListener("unhandledrejection", (e) => {
    const r = e.reason;
    send({ kind: "unhandledrejection", message: r instanceof Error ? r.message : text(r), stack: r instanceof Error && r.stack ? String(r.stack) : "" });
  });
  const original = console.error;
  console.error = function (...args) {
    send({ kind: "console.error", message: args.map(text).join(" ") });
    return original.apply(this, args);
  };
  // Settle a moment after load, so errors thrown while the app mounts come first.
  addEventListener("load", () => setTimeout(() => send({ kind: "load" }), 700));
})();
