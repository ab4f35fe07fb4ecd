// The file tree: the head checkpoint's files plus the agent's not-yet-checkpointed changes,
// with marks for files the last turn changed and files with unsaved edits.

import { button, el } from "./dom";

interface Dir {
  dirs: Map<string, Dir>;
  files: string[];
}

export interface TreeActions {
  open(path: string): void;
  create(): void;
  rename(path: string): void;
  remove(path: string): void;
}

export class FileTree {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private files = new Set<string>();
  /** Paths changed by the most recent turn (marked in the tree). */
  readonly changed = new Set<string>();
  private dirty = new Set<string>();
  private pending = new Map<string, boolean>();
  private collapsed = new Set<string>();
  selected: string | null = null;
  private renameBtn: HTMLButtonElement;
  private deleteBtn: HTMLButtonElement;

  constructor(private actions: TreeActions) {
    this.list = el("ul", { class: "tree", role: "tree", "aria-label": "Project files" });
    this.renameBtn = button("Rename", () => this.selected && this.actions.rename(this.selected), { disabled: true, "aria-label": "Rename the selected file" });
    this.deleteBtn = button("Delete", () => this.selected && this.actions.remove(this.selected), { disabled: true, "aria-label": "Delete the selected file" });
    this.root = el(
      "div",
      { class: "files" },
      el("div", { class: "toolbar" }, button("New file", () => this.actions.create(), { "aria-label": "New file" }), this.renameBtn, this.deleteBtn),
      this.list,
    );
    // Arrow keys move between rows; Left/Right fold and unfold folders.
    this.list.addEventListener("keydown", (e) => {
      const nodes = [...this.list.querySelectorAll<HTMLButtonElement>("button.node")];
      const i = nodes.indexOf(document.activeElement as HTMLButtonElement);
      if (i < 0) return;
      const cur = nodes[i]!;
      const isDir = cur.classList.contains("dir");
      const open = cur.getAttribute("aria-expanded") === "true";
      let next: HTMLButtonElement | undefined;
      if (e.key === "ArrowDown") next = nodes[i + 1];
      else if (e.key === "ArrowUp") next = nodes[i - 1];
      else if (e.key === "Home") next = nodes[0];
      else if (e.key === "End") next = nodes[nodes.length - 1];
      else if ((e.key === "ArrowRight" && isDir && !open) || (e.key === "ArrowLeft" && isDir && open)) {
        e.preventDefault();
        cur.click();
        return;
      } else return;
      e.preventDefault();
      next?.focus();
    });
  }

  /** The head checkpoint's files; agent changes not yet in a checkpoint stay applied on top. */
  setFiles(paths: string[]): void {
    this.files = new Set(paths);
    for (const [p, exists] of this.pending) {
      if (exists) this.files.add(p);
      else this.files.delete(p);
    }
    this.render();
  }

  /** A checkpoint landed: the agent's changes so far are in it. */
  checkpointed(): void {
    this.pending.clear();
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  /** An agent change ahead of the next checkpoint: `exists` false means deleted. */
  applyChange(path: string, exists: boolean): void {
    if (exists) this.files.add(path);
    else this.files.delete(path);
    this.pending.set(path, exists);
    this.changed.add(path);
    this.render();
  }

  /** A change made here (its checkpoint follows on the socket): shown at once, not marked. */
  userChange(path: string, exists: boolean): void {
    if (exists) this.files.add(path);
    else this.files.delete(path);
    this.render();
  }

  newTurn(): void {
    this.changed.clear();
    this.render();
  }

  setDirty(paths: Iterable<string>): void {
    this.dirty = new Set(paths);
    this.render();
  }

  select(path: string | null): void {
    this.selected = path;
    this.renameBtn.disabled = this.deleteBtn.disabled = !path || !this.files.has(path);
    this.render();
  }

  private build(): Dir {
    const top: Dir = { dirs: new Map(), files: [] };
    for (const p of [...this.files].sort()) {
      const segs = p.split("/");
      let d = top;
      for (const s of segs.slice(0, -1)) {
        let n = d.dirs.get(s);
        if (!n) d.dirs.set(s, (n = { dirs: new Map(), files: [] }));
        d = n;
      }
      d.files.push(p);
    }
    return top;
  }

  private render(): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.path;
    const walk = (d: Dir, prefix: string, depth: number): HTMLElement[] => {
      const out: HTMLElement[] = [];
      for (const [name, sub] of [...d.dirs].sort((a, b) => a[0].localeCompare(b[0]))) {
        const full = prefix + name;
        const open = !this.collapsed.has(full);
        const anyChanged = [...this.changed].some((c) => c.startsWith(full + "/"));
        const b = el("button", { class: `node dir${anyChanged ? " changed" : ""}`, "data-path": full + "/", style: `padding-left:${depth * 12 + 6}px`, "aria-expanded": String(open) }, `${open ? "▾" : "▸"} ${name}`);
        b.addEventListener("click", () => {
          if (open) this.collapsed.add(full);
          else this.collapsed.delete(full);
          this.render();
        });
        const li = el("li", { role: "treeitem", "aria-expanded": String(open) }, b);
        if (open) li.append(el("ul", { role: "group" }, ...walk(sub, full + "/", depth + 1)));
        out.push(li);
      }
      for (const p of d.files) {
        const name = p.slice(prefix.length);
        const cls = ["node", "file"];
        if (this.changed.has(p)) cls.push("changed");
        if (this.dirty.has(p)) cls.push("dirty");
        if (this.selected === p) cls.push("selected");
        const b = el(
          "button",
          { class: cls.join(" "), "data-path": p, style: `padding-left:${depth * 12 + 18}px`, title: p },
          name,
          this.dirty.has(p) ? el("span", { class: "mark", "aria-label": "unsaved" }, " ●") : null,
          this.changed.has(p) ? el("span", { class: "mark agent", "aria-label": "changed by the last turn" }, " M") : null,
        );
        b.addEventListener("click", () => this.actions.open(p));
        out.push(el("li", { role: "treeitem", "aria-selected": String(this.selected === p) }, b));
      }
      return out;
    };
    this.list.replaceChildren(...walk(this.build(), "", 0));
    if (this.files.size === 0) this.list.append(el("li", { class: "muted" }, "No files yet."));
    if (focused) (this.list.querySelector(`[data-path="${CSS.escape(focused)}"]`) as HTMLElement | null)?.focus();
  }
}
