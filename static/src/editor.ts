// The editor panel: open files as tabs, unsaved marks, saving against the checkpoint a file was
// read at, conflicts shown side by side (nothing is thrown away), and live agent/restore updates.

import { HttpError, readFile, saveFile, type CheckpointInfo, type Diff } from "./api";
import { button, el } from "./dom";
import type { CodeEditor } from "./cm";

interface Buffer {
  path: string;
  base: number;
  saved: string;
  current: string;
  note: string;
}

export interface EditorEvents {
  dirtyChanged(paths: string[]): void;
  saved(cp: CheckpointInfo | null): void;
  selected(path: string | null): void;
}

type CmModule = typeof import("./cm");

export class EditorPanel {
  readonly root: HTMLElement;
  private tabs: HTMLElement;
  private host: HTMLElement;
  private statusEl: HTMLElement;
  private saveBtn: HTMLButtonElement;
  private buffers = new Map<string, Buffer>();
  private active: string | null = null;
  /** A file opened before the agent's turn saved it: opened when its checkpoint arrives. */
  private waitingFor: string | null = null;
  private cm: CodeEditor | null = null;
  private cmMod: Promise<CmModule> | null = null;
  private placeholder: HTMLElement;

  constructor(
    private projectId: string,
    private events: EditorEvents,
  ) {
    this.tabs = el("div", { class: "tabs", role: "tablist", "aria-label": "Open files" });
    this.host = el("div", { class: "cm-host" });
    this.placeholder = el("div", { class: "muted center" }, "Open a file from the tree to edit it. Ctrl/Cmd+S saves.");
    this.statusEl = el("span", { class: "muted editor-status", role: "status", id: "editor-status" });
    this.saveBtn = button("Save", () => void this.save(), { disabled: true, id: "save", "aria-label": "Save the file (Ctrl+S)" });
    this.host.append(this.placeholder);
    this.root = el(
      "div",
      { class: "editor" },
      el("div", { class: "panel-head" }, this.tabs, el("div", { class: "row" }, this.statusEl, this.saveBtn)),
      this.host,
    );
  }

  private load(): Promise<CmModule> {
    return (this.cmMod ??= import("./cm"));
  }

  get activePath(): string | null {
    return this.active;
  }

  isOpen(path: string): boolean {
    return this.buffers.has(path);
  }

  isDirty(path: string): boolean {
    const b = this.buffers.get(path);
    return !!b && b.current !== b.saved;
  }

  /** The text of an open buffer (with unsaved edits), or null. */
  currentText(path: string): string | null {
    return this.buffers.get(path)?.current ?? null;
  }

  async open(path: string): Promise<void> {
    const mod = this.load();
    let b = this.buffers.get(path);
    if (!b) {
      this.status(`Opening ${path}…`);
      let f;
      try {
        f = await readFile(this.projectId, path);
      } catch (e) {
        // A file the agent is writing exists only in its turn until the turn's checkpoint.
        const pending = e instanceof HttpError && e.status === 404;
        // Opened as soon as the turn's checkpoint has it (see onCheckpoint).
        this.waitingFor = pending ? path : null;
        this.status(
          pending
            ? `${path} is not saved yet: the agent's turn saves it when it finishes.`
            : `${path} could not be opened: ${e instanceof Error ? e.message : String(e)}`,
        );
        return;
      }
      b = { path, base: f.checkpoint, saved: f.text, current: f.text, note: "" };
      this.buffers.set(path, b);
    }
    const { CodeEditor } = await mod;
    if (!this.cm) {
      this.placeholder.remove();
      this.cm = new CodeEditor(this.host, {
        change: (p, text) => {
          const buf = this.buffers.get(p);
          if (!buf) return;
          const was = buf.current !== buf.saved;
          buf.current = text;
          if (was !== (buf.current !== buf.saved)) this.renderTabs();
        },
        save: () => void this.save(),
      });
    }
    this.active = path;
    this.cm.show(path, b.current);
    this.renderTabs();
    this.status(b.note);
    this.events.selected(path);
  }

  focus(): void {
    this.cm?.focus();
  }

  private status(text: string): void {
    this.statusEl.textContent = text;
  }

  private renderTabs(): void {
    const dirty: string[] = [];
    this.tabs.replaceChildren(
      ...[...this.buffers.values()].map((b) => {
        const isDirty = b.current !== b.saved;
        if (isDirty) dirty.push(b.path);
        const name = b.path.split("/").pop() ?? b.path;
        const tab = el(
          "div",
          { class: `tab${b.path === this.active ? " active" : ""}${isDirty ? " dirty" : ""}`, "data-path": b.path },
          el("button", { type: "button", role: "tab", "aria-selected": String(b.path === this.active), title: b.path, class: "tab-name" }, name, isDirty ? el("span", { class: "mark", "aria-label": "unsaved changes" }, " ●") : ""),
          button("×", () => void this.close(b.path), { class: "tab-close", "aria-label": `Close ${b.path}` }),
        );
        tab.querySelector(".tab-name")!.addEventListener("click", () => void this.open(b.path));
        return tab;
      }),
    );
    const a = this.active ? this.buffers.get(this.active) : undefined;
    this.saveBtn.disabled = !a || a.current === a.saved;
    this.events.dirtyChanged(dirty);
  }

  private async close(path: string): Promise<void> {
    const b = this.buffers.get(path);
    if (!b) return;
    if (b.current !== b.saved) {
      const { confirmDialog } = await import("./dom");
      if (!(await confirmDialog("Close without saving?", `${path} has unsaved changes.`, "Discard changes"))) return;
    }
    this.buffers.delete(path);
    this.cm?.close(path);
    if (this.active === path) {
      this.active = null;
      const next = [...this.buffers.keys()].pop();
      if (next) await this.open(next);
      else this.events.selected(null);
    }
    this.renderTabs();
  }

  async save(): Promise<void> {
    const path = this.active;
    const b = path ? this.buffers.get(path) : undefined;
    if (!path || !b || !this.cm) return;
    const text = this.cm.text(path) ?? b.current;
    this.status(`Saving ${path}…`);
    try {
      const r = await saveFile(this.projectId, path, b.base, text);
      if (r.ok) {
        b.saved = text;
        if (r.checkpoint) b.base = r.checkpoint.n;
        b.note = "";
        this.status(r.checkpoint ? `Saved · checkpoint #${r.checkpoint.n}` : "Saved (no change)");
        this.renderTabs();
        this.events.saved(r.checkpoint);
      } else {
        await this.conflict(b, text, r.conflict.head);
      }
    } catch (e) {
      this.status(`Save failed: ${String(e instanceof Error ? e.message : e)} — your text is kept.`);
    }
  }

  /** Both versions side by side; the person picks, nothing is discarded silently. */
  private async conflict(b: Buffer, mine: string, head: number): Promise<void> {
    this.status("Conflict: the file changed on the server.");
    let theirs: { text: string; checkpoint: number };
    try {
      theirs = await readFile(this.projectId, b.path);
    } catch {
      theirs = { text: "", checkpoint: head }; // deleted on the server
    }
    const { mergeView } = await this.load();
    const host = el("div", { class: "merge-host" });
    const d = el("dialog", { class: "dialog wide-dialog", "aria-label": `Save conflict in ${b.path}`, id: "conflict" });
    const done = (): void => {
      d.close();
      d.remove();
    };
    d.append(
      el("h2", {}, `${b.path} changed while you were editing`),
      el("p", { class: "muted" }, `Left: your version (editable). Right: checkpoint #${theirs.checkpoint}.`),
      el("div", { class: "merge-labels" }, el("strong", {}, "Yours"), el("strong", {}, "On the server")),
      host,
    );
    const mv = mergeView(host, b.path, mine, theirs.text);
    d.append(
      el(
        "div",
        { class: "row end" },
        button("Keep editing", () => {
          b.current = mv.mine();
          this.cm?.replace(b.path, b.current);
          done();
          this.status("Conflict unresolved — your edits are kept; saving will ask again.");
        }),
        button("Use the server's version", () => {
          // Your text stays on the undo stack: Ctrl+Z brings it back.
          b.saved = theirs.text;
          b.base = theirs.checkpoint;
          this.cm?.replace(b.path, theirs.text);
          b.current = theirs.text;
          done();
          this.renderTabs();
          this.status("Took the server's version (Ctrl+Z restores yours).");
        }),
        button("Save mine over it", async () => {
          const text = mv.mine();
          done();
          b.base = theirs.checkpoint;
          this.cm?.replace(b.path, text);
          b.current = text;
          await this.save();
        }, { class: "primary" }),
      ),
    );
    document.body.append(d);
    d.showModal();
  }

  /** A new checkpoint: clean open files follow it, dirty ones are told the server moved. */
  async onCheckpoint(cp: CheckpointInfo, diff: Diff): Promise<void> {
    const waiting = this.waitingFor;
    if (waiting && (diff.added.includes(waiting) || diff.modified.includes(waiting))) {
      this.waitingFor = null;
      void this.open(waiting);
    }
    for (const path of [...diff.added, ...diff.modified]) {
      const b = this.buffers.get(path);
      if (!b) continue;
      if (b.current === b.saved) {
        try {
          const f = await readFile(this.projectId, path);
          if (b.current !== b.saved) continue; // edited while we fetched: keep the edits
          b.saved = b.current = f.text;
          b.base = f.checkpoint;
          b.note = `Updated by checkpoint #${cp.n}`;
          this.cm?.replace(path, f.text);
        } catch {
          /* gone again */
        }
      } else {
        b.note = `Changed on the server (checkpoint #${cp.n}); saving will show both versions.`;
      }
      if (path === this.active) this.status(b.note);
    }
    for (const path of diff.deleted) {
      const b = this.buffers.get(path);
      if (!b) continue;
      b.note = `Deleted on the server (checkpoint #${cp.n}); saving recreates it.`;
      b.saved = "\u0000deleted";
      if (path === this.active) this.status(b.note);
    }
    this.renderTabs();
  }

  onAgentChange(path: string): void {
    const b = this.buffers.get(path);
    if (!b) return;
    b.note = "The agent is changing this file…";
    if (path === this.active) this.status(b.note);
  }

  /** After a rename or delete made here. */
  forget(path: string): void {
    this.buffers.delete(path);
    this.cm?.close(path);
    if (this.active === path) this.active = null;
    this.renderTabs();
  }

  /** Paths with unsaved edits. */
  dirtyPaths(): string[] {
    return [...this.buffers.values()].filter((b) => b.current !== b.saved).map((b) => b.path);
  }
}
