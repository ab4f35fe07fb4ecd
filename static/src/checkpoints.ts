// The checkpoints panel: the project's history, a diff between any two checkpoints (file list and
// per-file line diff), and restore after a confirmation.

import { checkpointDiff, listCheckpoints, readFile, restoreCheckpoint, type CheckpointInfo } from "./api";
import { button, confirmDialog, el, timeAgo } from "./dom";
import { lineDiff } from "./linediff";

export class CheckpointsPanel {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private fromSel: HTMLSelectElement;
  private toSel: HTMLSelectElement;
  private diffOut: HTMLElement;
  private items: CheckpointInfo[] = [];

  constructor(
    private projectId: string,
    private onRestored: (cp: CheckpointInfo) => void,
  ) {
    this.list = el("ol", { class: "checkpoints", "aria-label": "Checkpoints" });
    this.fromSel = el("select", { "aria-label": "Diff from checkpoint", id: "diff-from" });
    this.toSel = el("select", { "aria-label": "Diff to checkpoint", id: "diff-to" });
    this.diffOut = el("div", { class: "diff-out", id: "diff-out" });
    this.root = el(
      "div",
      { class: "cps" },
      this.list,
      el("div", { class: "row diff-pick" }, el("span", {}, "Diff"), this.fromSel, el("span", {}, "→"), this.toSel, button("Compare", () => void this.compare(), { id: "diff-compare" })),
      this.diffOut,
    );
  }

  async refresh(): Promise<void> {
    try {
      this.items = (await listCheckpoints(this.projectId)).checkpoints;
    } catch (e) {
      this.list.replaceChildren(el("li", { class: "bad" }, String(e)));
      return;
    }
    const head = this.items[0]?.n;
    this.list.replaceChildren(
      ...this.items.map((c) =>
        el(
          "li",
          { "data-n": String(c.n) },
          el("div", { class: "cp-head" }, el("strong", {}, `#${c.n}`), el("span", { class: `author ${c.author}` }, c.author), el("span", { class: "muted" }, timeAgo(c.created_ms))),
          el("div", { class: "cp-summary" }, c.summary || "(no summary)"),
          el("div", { class: "row" },
            el("span", { class: "muted" }, `${c.files} files`),
            c.n === head
              ? el("span", { class: "muted" }, "current")
              : button("Restore", () => void this.restore(c), { "aria-label": `Restore checkpoint ${c.n}`, "data-restore": String(c.n) }),
            c.parent ? button("Diff", () => void this.compare(c.parent!, c.n), { "aria-label": `Changes in checkpoint ${c.n}` }) : null),
        ),
      ),
    );
    const opts = (sel: HTMLSelectElement, pick: number | undefined): void => {
      const keep = Number(sel.value) || pick;
      sel.replaceChildren(...this.items.map((c) => el("option", { value: String(c.n) }, `#${c.n} ${c.summary.slice(0, 30)}`)));
      if (keep) sel.value = String(keep);
    };
    opts(this.toSel, head);
    opts(this.fromSel, this.items[1]?.n ?? head);
  }

  private async restore(c: CheckpointInfo): Promise<void> {
    const ok = await confirmDialog(
      `Restore checkpoint #${c.n}?`,
      `The project's files become exactly those of #${c.n} (“${c.summary}”). This is a new checkpoint, so you can undo it by restoring the current one.`,
      "Restore",
    );
    if (!ok) return;
    const r = await restoreCheckpoint(this.projectId, c.n);
    this.onRestored(r.checkpoint);
    await this.refresh();
  }

  async compare(from = Number(this.fromSel.value), to = Number(this.toSel.value)): Promise<void> {
    this.fromSel.value = String(from);
    this.toSel.value = String(to);
    this.diffOut.replaceChildren(el("p", { class: "muted" }, "Comparing…"));
    try {
      const { diff } = await checkpointDiff(this.projectId, to, from);
      const rows: HTMLElement[] = [];
      const add = (kind: string, paths: string[]): void => {
        for (const p of paths) {
          const b = button(`${kind === "added" ? "+" : kind === "deleted" ? "−" : "~"} ${p}`, () => void this.fileDiff(p, from, to, b), { class: `diff-file ${kind}` });
          rows.push(el("li", {}, b));
        }
      };
      add("added", diff.added);
      add("modified", diff.modified);
      add("deleted", diff.deleted);
      this.diffOut.replaceChildren(
        el("p", { class: "muted" }, `#${from} → #${to}: ${diff.added.length} added, ${diff.modified.length} modified, ${diff.deleted.length} deleted`),
        el("ul", { class: "diff-files" }, ...rows),
      );
    } catch (e) {
      this.diffOut.replaceChildren(el("p", { class: "bad" }, String(e)));
    }
  }

  private async fileDiff(path: string, from: number, to: number, anchor: HTMLElement): Promise<void> {
    const next = anchor.nextElementSibling;
    if (next?.classList.contains("line-diff")) {
      next.remove();
      return;
    }
    const get = (n: number): Promise<string> => readFile(this.projectId, path, n).then((f) => f.text, () => "");
    const [a, b] = await Promise.all([get(from), get(to)]);
    const pre = el("pre", { class: "line-diff" });
    for (const l of lineDiff(a, b)) pre.append(el("span", { class: l.op === "+" ? "ins" : l.op === "-" ? "del" : "ctx" }, `${l.op} ${l.text}\n`));
    anchor.after(pre);
  }
}
