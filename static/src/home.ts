// The home page: start a project from a template with a first prompt, or open an existing one.

import { createProject, deleteProject, getConfig, importProject, listProjects, listTemplates, type ProjectMeta } from "./api";
import { confirmDialog, el, timeAgo } from "./dom";
import { usagePanel } from "./settings";

export const FIRST_PROMPT_KEY = "first-prompt:";

export async function renderHome(app: HTMLElement): Promise<void> {
  document.title = "open-replit";
  const prompt = el("textarea", {
    id: "first-prompt",
    rows: "4",
    "aria-label": "Describe the app to build",
    placeholder: "A habit tracker with a FastAPI backend and a clean dark UI…",
  });
  const name = el("input", { type: "text", id: "project-name", "aria-label": "Project name", placeholder: "my-app (optional)", maxlength: "100" });
  const template = el("select", { id: "template", "aria-label": "Template" });
  const create = el("button", { type: "submit", class: "primary", id: "create" }, "Create project");
  const err = el("p", { class: "bad", role: "alert" });
  const desc = el("p", { class: "muted template-desc", id: "template-desc" });
  const form = el(
    "form",
    { class: "create card", "aria-label": "New project" },
    el("h1", {}, "Describe an app. Watch it being built."),
    prompt,
    el("div", { class: "row" }, el("label", { class: "inline" }, "Template ", template), el("label", { class: "inline grow" }, "Name ", name), create),
    desc,
    err,
  );
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    create.disabled = true;
    err.textContent = "";
    try {
      const { project } = await createProject(name.value.trim() || defaultName(prompt.value), template.value);
      const text = prompt.value.trim();
      if (text) sessionStorage.setItem(FIRST_PROMPT_KEY + project.id, text);
      location.assign(`/p/${encodeURIComponent(project.id)}`);
    } catch (x) {
      err.textContent = `Could not create the project: ${x instanceof Error ? x.message : String(x)}`;
      create.disabled = false;
    }
  });
  const listEl = el("ul", { class: "project-list", id: "projects", "aria-label": "Projects" }, el("li", { class: "muted" }, "Loading…"));
  const setup = el("div");
  app.replaceChildren(setup, form, importForm(template), el("section", { class: "card", "aria-labelledby": "projects-h" }, el("h2", { id: "projects-h" }, "Your projects"), listEl), usagePanel());
  prompt.focus();

  void getConfig()
    .then((cfg) => {
      if (!cfg.llm.configured && cfg.llm.setup_hint)
        setup.replaceChildren(el("section", { class: "setup", role: "alert", id: "llm-setup" }, el("h2", {}, "Connect a model first"), el("p", {}, cfg.llm.setup_hint)));
    })
    .catch(() => setup.replaceChildren(el("p", { class: "bad" }, "Cannot reach the API.")));
  void listTemplates()
    .then(({ templates }) => {
      template.replaceChildren(...templates.map((t) => el("option", { value: t.name, title: t.description }, t.name)));
      const d = templates.find((t) => t.default);
      if (d) template.value = d.name;
      const describe = (): void => {
        desc.textContent = templates.find((t) => t.name === template.value)?.description ?? "";
      };
      template.addEventListener("change", describe);
      describe();
    })
    .catch(() => template.replaceChildren(el("option", { value: "" }, "default")));
  try {
    const { projects } = await listProjects();
    listEl.replaceChildren(
      ...(projects.length ? projects.map(projectRow) : [el("li", { class: "muted" }, "No projects yet — describe one above.")]),
    );
  } catch (x) {
    listEl.replaceChildren(el("li", { class: "bad" }, `Could not list projects: ${x instanceof Error ? x.message : String(x)}`));
  }
}

function projectRow(p: ProjectMeta): HTMLElement {
  const row = el(
    "li",
    {},
    el("a", { href: `/p/${encodeURIComponent(p.id)}`, class: "project-link", "data-id": p.id }, p.name || p.id),
    el("span", { class: "muted" }, ` ${p.template} · ${timeAgo(p.created_ms)}`),
  );
  // Only the owner may delete (the API refuses anyone else); a shared project shows no button.
  const me = document.body.dataset.userId;
  if (!p.owner || !me || p.owner === me) {
    const err = el("span", { class: "bad", role: "alert" });
    const del = el("button", { type: "button", class: "btn danger", "data-testid": "delete-project", "aria-label": `Delete ${p.name || p.id}` }, "Delete");
    del.addEventListener("click", async () => {
      const sure = await confirmDialog(
        `Delete “${p.name || p.id}”?`,
        "Its files, every checkpoint, the chat, its published app and the app's data are removed for good. This cannot be undone.",
        "Delete for good",
      );
      if (!sure) return;
      del.disabled = true;
      err.textContent = "";
      try {
        await deleteProject(p.id);
        row.remove();
      } catch (x) {
        err.textContent = ` Could not delete: ${x instanceof Error ? x.message : String(x)}`;
        del.disabled = false;
      }
    });
    row.append(" ", del, err);
  }
  return row;
}

function defaultName(prompt: string): string {
  const words = prompt.trim().split(/\s+/).slice(0, 6).join(" ");
  return words.slice(0, 60) || "untitled";
}

/** "Import from git": a public repository's tracked files become a new project. */
function importForm(template: HTMLSelectElement): HTMLElement {
  const url = el("input", {
    type: "url",
    id: "import-url",
    "data-testid": "import-url",
    "aria-label": "Repository URL",
    placeholder: "https://github.com/you/app.git",
    required: "",
  });
  const go = el("button", { type: "submit", id: "import", "data-testid": "import-button" }, "Import");
  const err = el("p", { class: "bad", role: "alert", "data-testid": "import-error" });
  const form = el(
    "form",
    { class: "card", "aria-label": "Import from git" },
    el("h2", {}, "Import from git"),
    el("p", { class: "muted" }, "The repository's files become a new project; its template is inferred from the files (or the one chosen above is used when nothing fits)."),
    el("div", { class: "row" }, el("label", { class: "inline grow" }, "URL ", url), go),
    err,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    go.disabled = true;
    err.textContent = "";
    try {
      let r;
      try {
        r = await importProject(url.value.trim());
      } catch (x) {
        // Nothing fits: use the template chosen above.
        if (!(x instanceof Error && /pass template/.test(x.message)) || !template.value) throw x;
        r = await importProject(url.value.trim(), template.value);
      }
      location.assign(`/p/${encodeURIComponent(r.project.id)}`);
    } catch (x) {
      err.textContent = `Could not import: ${x instanceof Error ? x.message : String(x)}`;
      go.disabled = false;
    }
  });
  return form;
}
