// The project page: resizable panels (chat | files+checkpoints+publish+git+secrets | editor over terminal | preview)
// fed by one project WebSocket, and the glue between them.

import { deleteFile, exportUrl, forkProject, getProject, listFiles, readFile, renameProject, saveFile } from "./api";
import { ChatPanel, argSummary } from "./chat";
import { CheckpointsPanel } from "./checkpoints";
import { button, confirmDialog, el, promptDialog } from "./dom";
import { EditorPanel } from "./editor";
import { GitPanel } from "./gitdeploy";
import { FIRST_PROMPT_KEY } from "./home";
import { PreviewPanel } from "./preview";
import { PublishPanel } from "./publish";
import { SecretsPanel } from "./secrets";
import { ProjectSocket, type ConnState, type ServerEvent } from "./socket";
import { TerminalPanel } from "./terminal";
import { FileTree } from "./tree";

function debounce(f: () => void, ms: number): () => void {
  let t: number | undefined;
  return () => {
    clearTimeout(t);
    t = window.setTimeout(f, ms);
  };
}

/** A vertical or horizontal splitter that resizes the element before it; arrow keys work too. */
function splitter(key: string, target: HTMLElement, axis: "x" | "y", def: number, min: number, invert = false): HTMLElement {
  const s = el("div", {
    class: `splitter ${axis}`,
    role: "separator",
    tabindex: "0",
    "aria-orientation": axis === "x" ? "vertical" : "horizontal",
    "aria-label": `Resize ${key}`,
  });
  const prop = axis === "x" ? "width" : "height";
  const apply = (v: number): void => {
    const size = Math.max(min, Math.round(v));
    target.style.flexBasis = `${size}px`;
    s.setAttribute("aria-valuenow", String(size));
    localStorage.setItem(`size:${key}`, String(size));
  };
  const saved = Number(localStorage.getItem(`size:${key}`));
  target.style.flexBasis = `${saved >= min ? saved : def}px`;
  s.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    s.setPointerCapture(e.pointerId);
    const start = axis === "x" ? e.clientX : e.clientY;
    const from = target.getBoundingClientRect()[prop];
    const move = (m: PointerEvent): void => {
      const d = (axis === "x" ? m.clientX : m.clientY) - start;
      apply(from + (invert ? -d : d));
    };
    const up = (): void => {
      s.removeEventListener("pointermove", move);
      s.removeEventListener("pointerup", up);
    };
    s.addEventListener("pointermove", move);
    s.addEventListener("pointerup", up);
  });
  s.addEventListener("keydown", (e) => {
    const grow = axis === "x" ? ["ArrowRight", "ArrowLeft"] : ["ArrowDown", "ArrowUp"];
    const i = grow.indexOf(e.key);
    if (i < 0) return;
    e.preventDefault();
    const step = (e.shiftKey ? 60 : 20) * (i === 0 ? 1 : -1) * (invert ? -1 : 1);
    apply(target.getBoundingClientRect()[prop] + step);
  });
  return s;
}

function section(id: string, label: string, key: string, ...children: HTMLElement[]): HTMLElement {
  return el("section", { id, class: "panel", "aria-label": `${label} (Alt+${key})`, tabindex: "-1" }, ...children);
}

export async function renderProject(app: HTMLElement, id: string): Promise<void> {
  app.className = "app project";
  const status = document.getElementById("status")!;
  const extra = document.getElementById("topbar-extra")!;
  let meta;
  try {
    meta = await getProject(id);
  } catch (e) {
    app.replaceChildren(el("p", { class: "bad" }, `Cannot open project ${id}: ${e instanceof Error ? e.message : String(e)}`), el("a", { href: "/" }, "Back to projects"));
    return;
  }
  document.title = `${meta.project.name} · open-replit`;
  let head = meta.head?.n ?? 0;

  const socket: ProjectSocket = new ProjectSocket(id, {
    onEvent: (e) => dispatch(e),
    onState: (s) => showConn(s),
  });
  const chat = new ChatPanel({
    send: (text, model) => socket.send({ type: "user_message", text, ...(model ? { model } : {}) }),
    stop: () => socket.send({ type: "stop" }),
    newChat: () => socket.send({ type: "new_conversation" }),
  });
  const editor = new EditorPanel(id, {
    dirtyChanged: (paths) => tree.setDirty(paths),
    saved: (cp) => {
      if (cp) head = Math.max(head, cp.n);
    },
    selected: (p) => tree.select(p),
  });
  const tree: FileTree = new FileTree({
    open: (p) => void editor.open(p).catch((e) => alertLine(`Cannot open ${p}: ${String(e)}`)),
    create: () => void createFile(),
    rename: (p) => void renameFile(p),
    remove: (p) => void removeFile(p),
  });
  const terminal = new TerminalPanel(id);
  const preview = new PreviewPanel(id);
  const checkpoints = new CheckpointsPanel(id, (cp) => {
    head = Math.max(head, cp.n);
  });
  const publish = new PublishPanel(id, () => showSide("publish"));
  const git = new GitPanel(id, meta.project.name, () => showSide("git"));
  const secrets = new SecretsPanel(id);

  const refreshFiles = debounce(async () => {
    try {
      const f = await listFiles(id);
      head = Math.max(head, f.checkpoint);
      tree.setFiles(f.files.map((x) => x.path));
    } catch (e) {
      alertLine(`Cannot list files: ${String(e)}`);
    }
  }, 120);
  const refreshCheckpoints = debounce(() => void checkpoints.refresh(), 200);
  const refreshPreview = debounce(() => void preview.refresh(), 300);

  function alertLine(msg: string): void {
    toast.textContent = msg;
    toast.hidden = false;
    setTimeout(() => (toast.hidden = true), 6000);
  }

  async function createFile(): Promise<void> {
    const dir = tree.selected?.includes("/") ? tree.selected.slice(0, tree.selected.lastIndexOf("/") + 1) : "";
    const p = await promptDialog("New file", "Path", dir);
    if (!p) return;
    if (tree.has(p)) return alertLine(`${p} already exists.`);
    const r = await saveFile(id, p, head, "").catch((e: unknown) => e);
    if (r instanceof Error) return alertLine(r.message);
    if (!(r as { ok: boolean }).ok) return alertLine(`${p} was just created by someone else.`);
    tree.userChange(p, true);
    await editor.open(p);
  }

  async function renameFile(from: string): Promise<void> {
    const to = await promptDialog("Rename file", "New path", from);
    if (!to || to === from) return;
    if (tree.has(to)) return alertLine(`${to} already exists.`);
    try {
      const f = await readFile(id, from);
      const w = await saveFile(id, to, f.checkpoint, editor.currentText(from) ?? f.text);
      if (!w.ok) return alertLine(`Rename failed: ${to} changed meanwhile.`);
      const d = await deleteFile(id, from, w.checkpoint?.n ?? f.checkpoint);
      if (!d.ok) return alertLine(`Copied to ${to}, but ${from} changed meanwhile and was kept.`);
      editor.forget(from);
      tree.userChange(from, false);
      tree.userChange(to, true);
      await editor.open(to);
    } catch (e) {
      alertLine(`Rename failed: ${String(e)}`);
    }
  }

  async function removeFile(p: string): Promise<void> {
    if (!(await confirmDialog(`Delete ${p}?`, "The file is removed in a new checkpoint; restoring the previous checkpoint brings it back.", "Delete"))) return;
    const r = await deleteFile(id, p, head).catch((e: unknown) => e);
    if (r instanceof Error) return alertLine(r.message);
    if (!(r as { ok: boolean }).ok) return alertLine(`${p} changed since you last saw it; not deleted.`);
    editor.forget(p);
    tree.userChange(p, false);
  }

  const toolNames = new Map<string, string>();
  function dispatch(e: ServerEvent): void {
    if (e.type === "project_deleted") {
      socket.close();
      app.replaceChildren(
        el("section", { class: "card", role: "alert", "data-testid": "project-deleted" }, el("h1", {}, "This project was deleted"), el("p", {}, "Its owner deleted it: its files, history, chat and published app are gone."), el("a", { href: "/" }, "Back to projects")),
      );
      return;
    }
    chat.handle(e);
    publish.handle(e);
    git.handle(e);
    switch (e.type) {
      case "hello":
        conn.dataset.lastSeq = String(e.last_seq);
        break;
      case "turn_started":
        tree.newTurn();
        break;
      case "file_changed":
        tree.applyChange(e.path, e.sha256 !== null);
        editor.onAgentChange(e.path);
        break;
      case "checkpoint_created":
        head = Math.max(head, e.checkpoint.n);
        tree.checkpointed();
        refreshFiles();
        refreshCheckpoints();
        void editor.onCheckpoint(e.checkpoint, e.diff);
        break;
      case "tool_call_started":
        toolNames.set(e.call_id, e.name);
        if (e.name === "run_command") terminal.agentStarted(e.call_id, argSummary(e.name, e.arguments));
        break;
      case "tool_output":
        terminal.agentOutput(e.call_id, e.stream, e.data);
        break;
      case "tool_call_finished":
        terminal.agentFinished(e.call_id, e.ok, e.duration_ms);
        // The agent started or restarted the dev server: show it.
        if (/preview/.test(toolNames.get(e.call_id) ?? "")) refreshPreview();
        break;
      case "turn_finished":
        refreshPreview();
        break;
      case "preview_reload":
        // The verify loop watches the page for runtime errors: load the current code now.
        void preview.refresh(true);
        break;
      case "reset":
        refreshFiles();
        refreshCheckpoints();
        break;
      default:
        break;
    }
  }

  const conn = el("button", { type: "button", id: "conn", class: "conn", "aria-live": "polite", "aria-label": "Connection" }, "connecting…");
  conn.addEventListener("click", () => socket.retryNow());
  function showConn(s: ConnState): void {
    conn.className = `conn ${s.kind}`;
    conn.textContent =
      s.kind === "open" ? "● live" : s.kind === "connecting" ? (s.attempt > 1 ? `reconnecting… (try ${s.attempt})` : "connecting…") : `offline · retrying in ${Math.ceil(s.retryInMs / 1000)} s`;
    conn.title = s.kind === "open" ? "Connected to the project; events stream live." : "Not connected; events missed meanwhile are replayed on reconnect.";
  }

  const toast = el("div", { class: "toast", role: "alert", hidden: true });
  status.remove();
  const projectName = el("span", { class: "project-name" }, meta.project.name);
  const rename = button(
    "✎",
    async () => {
      const name = await promptDialog("Rename the project", "Name", projectName.textContent ?? "");
      if (!name || name === projectName.textContent) return;
      try {
        const { project } = await renameProject(id, name);
        projectName.textContent = project.name;
        document.title = `${project.name} · open-replit`;
      } catch (x) {
        alertLine(`Could not rename: ${x instanceof Error ? x.message : String(x)}`);
      }
    },
    { class: "btn icon editor-only", title: "Rename the project", "aria-label": "Rename the project", "data-testid": "rename-project" },
  );
  const fork = button(
    "Fork",
    async () => {
      const name = await promptDialog("Fork the project", "Name of the copy (its current files; not the chat or the deployments)", `${projectName.textContent ?? ""} (fork)`);
      if (!name) return;
      fork.disabled = true;
      try {
        const { project } = await forkProject(id, name);
        location.assign(`/p/${encodeURIComponent(project.id)}`);
      } catch (x) {
        alertLine(`Could not fork: ${x instanceof Error ? x.message : String(x)}`);
        fork.disabled = false;
      }
    },
    { class: "btn", title: "Copy this project's current files into a new project of yours", "data-testid": "fork-project" },
  );
  extra.replaceChildren(
    projectName,
    rename,
    conn,
    el("a", { href: exportUrl(id), download: `${id}.zip`, class: "btn", id: "download-zip", "aria-label": "Download the project as a zip" }, "Download zip"),
    fork,
    git.button,
    publish.button,
  );

  // Sidebar: files, checkpoints, publishing, git & deploy and the app's secrets as tabs.
  type Side = "files" | "cps" | "publish" | "git" | "secrets";
  const tabs: Record<Side, HTMLButtonElement> = {
    files: button("Files", () => showSide("files"), { role: "tab", id: "tab-files", "aria-selected": "true" }),
    cps: button("Checkpoints", () => showSide("cps"), { role: "tab", id: "tab-checkpoints", "aria-selected": "false" }),
    publish: button("Publish", () => showSide("publish"), { role: "tab", id: "tab-publish", "aria-selected": "false" }),
    git: button("Git", () => showSide("git"), { role: "tab", id: "tab-git", "aria-selected": "false", "data-testid": "git-tab" }),
    secrets: button("Secrets", () => showSide("secrets"), { role: "tab", id: "tab-secrets", class: "editor-only", "aria-selected": "false", "data-testid": "secrets-tab" }),
  };
  const filesTab = tabs.files;
  const sideBody = el("div", { class: "side-body" }, tree.root);
  const sideRoots: Record<Side, HTMLElement> = { files: tree.root, cps: checkpoints.root, publish: publish.root, git: git.root, secrets: secrets.root };
  function showSide(which: Side): void {
    for (const [k, t] of Object.entries(tabs)) t.setAttribute("aria-selected", String(k === which));
    sideBody.replaceChildren(sideRoots[which]);
    if (which === "cps") void checkpoints.refresh();
    if (which === "git") git.shown();
    if (which === "secrets") void secrets.refresh();
  }

  const chatSec = section("chat-panel", "Chat", "1", chat.root);
  const sideSec = section("files-panel", "Files, checkpoints, publishing, git and secrets", "2", el("div", { class: "panel-head", role: "tablist" }, ...Object.values(tabs)), sideBody);
  const editorSec = section("editor-panel", "Editor", "3", editor.root);
  const termSec = section("terminal-panel", "Terminal", "4", el("div", { class: "panel-head" }, el("h2", {}, "Terminal")), terminal.root);
  const previewSec = section("preview-panel", "Preview", "5", preview.root);
  const center = el("div", { class: "col center-col" }, editorSec, splitter("terminal", termSec, "y", 220, 80, true), termSec);
  const w = window.innerWidth;
  app.replaceChildren(
    el(
      "div",
      { class: "workspace" },
      chatSec,
      splitter("chat", chatSec, "x", Math.round(w * 0.27), 240),
      sideSec,
      splitter("files", sideSec, "x", Math.round(w * 0.15), 140),
      center,
      splitter("preview", previewSec, "x", Math.round(w * 0.28), 200, true),
      previewSec,
    ),
    toast,
  );
  // The splitter before the preview resizes the preview (it sits after the splitter).
  const panels: Record<string, () => void> = {
    "1": () => chat.focusInput(),
    "2": () => (sideSec.querySelector("button.node") as HTMLElement | null ?? filesTab).focus(),
    "3": () => (editor.activePath ? editor.focus() : editorSec.focus()),
    "4": () => terminal.focus(),
    "5": () => preview.focus(),
  };
  document.addEventListener("keydown", (e) => {
    // Ctrl/Cmd+S anywhere on the page saves the open file instead of "save page as".
    if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "s") {
      e.preventDefault();
      if (!(e.target as HTMLElement | null)?.closest(".cm-editor")) void editor.save();
      return;
    }
    if (e.altKey && !e.ctrlKey && !e.metaKey && panels[e.key]) {
      e.preventDefault();
      panels[e.key]!();
    }
  });

  refreshFiles();
  void preview.refresh();
  void publish.refresh();
  void terminal.ensure();
  socket.start();
  // Exposed for diagnosis from the console (and for tests that simulate a dropped network).
  (window as unknown as { openReplit: unknown }).openReplit = { socket, terminal, editor };
  const first = sessionStorage.getItem(FIRST_PROMPT_KEY + id);
  if (first) {
    sessionStorage.removeItem(FIRST_PROMPT_KEY + id);
    socket.send({ type: "user_message", text: first });
  }
  chat.focusInput();
  window.addEventListener("beforeunload", (e) => {
    if (editor.dirtyPaths().length) e.preventDefault();
  });
}
