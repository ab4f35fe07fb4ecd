// Entry point of the web app: renders the shell and the service status.

import { getConfig, getHealth, type Check, type Health } from "./api";

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function light(name: string, c: Check): HTMLElement {
  return el(
    "li",
    { class: c.ok ? "ok" : "bad" },
    el("strong", {}, `${name}: `),
    c.detail,
  );
}

function renderHealth(h: Health): HTMLElement {
  return el(
    "ul",
    { class: "health", "aria-label": "service health" },
    light("Azure Blob", h.azure_blob),
    light("VM API", h.vm_api),
    light("LLM", {
      ok: h.llm.configured,
      detail: h.llm.configured
        ? `${h.llm.providers.join(" → ")} (${h.llm.base_url ?? ""}), model ${h.llm.default_model}`
        : "not configured",
    }),
  );
}

async function main(): Promise<void> {
  const app = document.getElementById("app")!;
  const status = document.getElementById("status")!;
  app.replaceChildren(el("h1", {}, "Describe an app. Watch it being built."));
  try {
    const cfg = await getConfig();
    if (!cfg.llm.configured && cfg.llm.setup_hint) {
      app.append(
        el("section", { class: "setup", role: "alert", id: "llm-setup" },
          el("h2", {}, "Connect a model first"),
          el("p", {}, cfg.llm.setup_hint)),
      );
    }
  } catch (e) {
    app.append(el("p", { class: "bad" }, `Cannot reach the API: ${String(e)}`));
  }
  try {
    const h = await getHealth();
    status.textContent = h.ok ? "all services up" : "some services are down";
    status.className = h.ok ? "status ok" : "status bad";
    app.append(renderHealth(h));
  } catch (e) {
    status.textContent = "API unreachable";
    status.className = "status bad";
  }
}

void main();
