// Entry point: routes `/` to the home page and `/p/{id}` to the project page, and shows service
// health in the top bar. Editor and terminal code load lazily from the project page.

import { initAccount, initProjectAccess } from "./account";
import { getHealth } from "./api";
import { renderHome } from "./home";
import { renderProject } from "./project";
import { openSettings, settingsButton } from "./settings";

async function health(): Promise<void> {
  const status = document.getElementById("status");
  if (!status) return;
  try {
    const h = await getHealth();
    const down = [
      !h.azure_blob.ok && `storage (${h.azure_blob.detail})`,
      !h.vm_api.ok && `VM API (${h.vm_api.detail})`,
      !h.llm.configured && "LLM not configured",
    ].filter(Boolean);
    status.textContent = down.length ? `degraded: ${down.join(", ")}` : "all services up";
    status.className = down.length ? "status bad" : "status ok";
    status.title = `LLM: ${h.llm.providers.join(" → ") || "none"} · default model ${h.llm.default_model}`;
  } catch {
    status.textContent = "API unreachable";
    status.className = "status bad";
  }
}

async function main(): Promise<void> {
  const app = document.getElementById("app")!;
  // With sign-in and nobody signed in, the sign-in page replaces everything else.
  if (!(await initAccount(app))) return;
  document.getElementById("account")?.prepend(settingsButton());
  if (location.hash === "#settings") openSettings();
  const m = /^\/p\/([a-z0-9-]{1,64})\/?$/.exec(location.pathname);
  if (m) {
    await renderProject(app, m[1]!);
    await initProjectAccess(m[1]!);
  } else {
    void renderHome(app);
    void health();
  }
}

void main();
