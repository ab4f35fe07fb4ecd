// The Publish panel and the header's Publish button: the live URL (copy, open, visibility,
// unpublish), the current publish's steps and build log from the socket's `deploy_*` events,
// and the deployment history with rollback and the live backend's log.

import {
  deploymentLogs,
  HttpError,
  listDeployments,
  openDeploymentUrl,
  publishProject,
  rollbackDeployment,
  setVisibility,
  unpublish,
  type Deployment,
  type DeploymentsReply,
  type DeployStep,
  type Visibility,
} from "./api";
import { button, confirmDialog, el, formatMs, timeAgo } from "./dom";
import type { ServerEvent } from "./socket";

const STEPS = ["queued", "building", "uploading", "starting", "live"] as const;
type Step = (typeof STEPS)[number];
type StepState = "pending" | "active" | "done" | "failed";
const LOG_CAP = 2000;

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const newlines = (s: string): number => s.split("\n").length - 1;
const inProgress = (d: Deployment): boolean => d.status === "queued" || d.status === "building" || d.status === "starting";
/** `d-12` → 12, to keep the history newest first. */
const num = (d: Deployment): number => Number(d.id.slice(2)) || 0;

export class PublishPanel {
  readonly root: HTMLElement;
  /** The header's Publish button (hidden for viewers by app.css). */
  readonly button: HTMLButtonElement;
  private head: HTMLElement;
  private stepsList: HTMLElement;
  private error: HTMLElement;
  private logBox: HTMLDetailsElement;
  private log: HTMLPreElement;
  private history: HTMLElement;
  private reply: DeploymentsReply | null = null;
  /** Why publishing is unavailable on this server (`503`), when it is. */
  private notConfigured: string | null = null;
  private busy = false;
  /** The deployment whose progress and log are shown, and whether it is over. */
  private current: string | null = null;
  private currentDone = true;
  private steps = new Map<Step, { state: StepState; message: string }>();
  private failure: string | null = null;
  private logLines = 0;
  private refreshTimer: number | undefined;
  private loadFailed = false;

  constructor(
    private projectId: string,
    private reveal: () => void,
  ) {
    this.button = button("Publish", () => void this.publish(), { id: "publish-button", class: "primary editor-only", "data-testid": "publish-button" });
    this.head = el("div", { class: "publish-head" });
    this.stepsList = el("ol", { class: "publish-steps", "aria-label": "Publish steps" });
    this.error = el("div", { class: "publish-error bad", role: "alert", "data-testid": "publish-error", hidden: true });
    this.log = el("pre", { class: "publish-log", "data-testid": "publish-log" });
    this.logBox = el("details", { class: "publish-log-box", hidden: true }, el("summary", {}, "Build log"), this.log);
    this.history = el("ol", { class: "deploys", "aria-label": "Deployments" });
    this.root = el(
      "div",
      { class: "publish", id: "publish-panel", "data-testid": "publish-panel" },
      this.head,
      this.stepsList,
      this.error,
      this.logBox,
      el("h3", {}, "History"),
      this.history,
    );
    this.resetProgress(null);
    this.render();
  }

  /** Loads the deployments; the button and the panel follow. */
  async refresh(): Promise<void> {
    try {
      this.reply = await listDeployments(this.projectId);
      if (this.loadFailed) this.showError(null);
      this.notConfigured = null;
      this.loadFailed = false;
      // A publish whose end the socket did not tell (a log reset) is over all the same.
      const cur = this.reply.deployments.find((d) => d.id === this.current);
      if (cur && !inProgress(cur)) this.currentDone = true;
    } catch (e) {
      this.loadFailed = true;
      if (e instanceof HttpError && e.status === 503) {
        this.notConfigured = e.message.includes("HTTP 503") ? "Publishing is not configured on this server (PUBLISH_URL is not set)." : e.message;
        this.reply = null;
        this.showError(this.notConfigured);
      } else {
        this.showError(`Cannot list deployments: ${message(e)}`);
      }
    }
    this.render();
  }

  handle(e: ServerEvent): void {
    switch (e.type) {
      case "deploy_updated":
        this.updated(e.deployment);
        break;
      case "deploy_progress":
        if (this.track(e.deployment)) this.progress(e.step, e.message);
        break;
      case "deploy_log":
        // External deploys (`x-N`, the Git & deploy panel) stream on the same event type.
        if (e.deployment.startsWith("d-") && this.track(e.deployment)) this.appendLog(e.stream, e.data);
        break;
      case "reset":
        void this.refresh();
        break;
      default:
        break;
    }
  }

  private async publish(): Promise<void> {
    this.reveal();
    this.showError(null);
    this.busy = true;
    this.renderButton();
    try {
      const d = await publishProject(this.projectId);
      this.updated(d);
    } catch (e) {
      this.showError(`Publish failed: ${message(e)}`);
    } finally {
      this.busy = false;
      this.renderButton();
    }
  }

  // --- Progress of the current publish -------------------------------------------------------

  /** Whether deployment `id` is the one shown: a new one replaces the shown one (with empty
   * steps and log) once that is over, so a queued publish waits its turn. */
  private track(id: string): boolean {
    if (id === this.current) return true;
    if (!this.currentDone) return false;
    this.resetProgress(id);
    return true;
  }

  private resetProgress(id: string | null): void {
    this.current = id;
    this.currentDone = id === null;
    this.failure = null;
    for (const s of STEPS) this.steps.set(s, { state: "pending", message: "" });
    this.log.replaceChildren();
    this.logLines = 0;
    this.logBox.hidden = true;
    if (id) this.showError(null);
    this.renderSteps();
  }

  private progress(step: DeployStep, msg: string): void {
    if (step === "failed") {
      this.fail(msg);
      return;
    }
    const i = STEPS.indexOf(step);
    STEPS.forEach((s, j) => {
      const st = this.steps.get(s)!;
      st.state = j < i || (j === i && s === "live") ? "done" : j === i ? "active" : "pending";
      if (j === i) st.message = msg;
    });
    if (step === "live") this.currentDone = true;
    this.renderSteps();
  }

  private fail(why: string, lines: string[] = []): void {
    for (const st of this.steps.values()) if (st.state === "active") st.state = "failed";
    this.failure = why;
    this.currentDone = true;
    if (!this.logBox.hidden) this.logBox.open = true;
    this.showError(why, lines);
    this.renderSteps();
  }

  private renderSteps(): void {
    const shown: [string, StepState, string][] = STEPS.map((s) => [s, this.steps.get(s)!.state, this.steps.get(s)!.message]);
    if (this.failure !== null) shown[shown.length - 1] = ["failed", "failed", this.failure];
    this.stepsList.hidden = this.current === null;
    this.stepsList.replaceChildren(
      ...shown.map(([step, state, msg]) =>
        el(
          "li",
          { class: `step ${state}`, "data-testid": "publish-step", "data-step": step, "data-state": state },
          el("span", { class: "step-name" }, step),
          msg ? el("span", { class: "step-msg" }, msg) : null,
        ),
      ),
    );
  }

  private appendLog(stream: string, data: string): void {
    this.logBox.hidden = false;
    const atEnd = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    this.log.append(el("span", { class: stream }, data));
    this.logLines += newlines(data);
    // Keep the last LOG_CAP lines: drop whole chunks, then the start of the oldest one.
    while (this.logLines > LOG_CAP && this.log.firstChild) {
      const first = this.log.firstChild;
      const text = first.textContent ?? "";
      const n = newlines(text);
      const excess = this.logLines - LOG_CAP;
      if (n <= excess) {
        first.remove();
        this.logLines -= n;
      } else {
        let at = 0;
        for (let k = 0; k < excess; k++) at = text.indexOf("\n", at) + 1;
        first.textContent = text.slice(at);
        this.logLines -= excess;
      }
    }
    if (atEnd) this.log.scrollTop = this.log.scrollHeight;
  }

  private showError(msg: string | null, lines: string[] = []): void {
    this.error.hidden = msg === null;
    this.error.replaceChildren(msg ?? "", lines.length ? el("pre", { class: "last-lines" }, lines.join("\n")) : "");
  }

  // --- Deployments -----------------------------------------------------------------------------

  /** A deployment record from the socket or an answer: update it in place, then reload. */
  private updated(d: Deployment): void {
    if (this.reply) {
      const list = this.reply.deployments.filter((x) => x.id !== d.id);
      list.push(d);
      list.sort((a, b) => num(b) - num(a));
      this.reply.deployments = list;
      if (d.status === "live") this.reply.live = d.id;
    }
    if (inProgress(d)) this.track(d.id);
    if (d.id === this.current) {
      if (d.status === "failed" || d.status === "interrupted") {
        this.fail(d.error ?? this.failure ?? (d.status === "interrupted" ? "Interrupted: the server restarted mid-publish." : "Failed."), d.last_lines ?? []);
      } else if (d.status === "live") {
        this.progress("live", this.steps.get("live")!.message);
      }
    }
    this.render();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), 300);
  }

  private render(): void {
    this.renderButton();
    this.renderHead();
    this.renderHistory();
  }

  private renderButton(): void {
    const unpublishable = this.reply?.publishable === false;
    this.button.disabled = this.busy || this.notConfigured !== null || unpublishable;
    this.button.textContent = this.busy ? "Publishing…" : "Publish";
    this.button.title = this.notConfigured ?? (unpublishable ? "This template has no publish recipe." : "Build the head checkpoint and serve it at the project's URL.");
  }

  private renderHead(): void {
    const r = this.reply;
    if (!r) {
      this.head.replaceChildren(this.notConfigured ? "" : el("p", { class: "muted" }, "Loading…"));
      return;
    }
    const parts: (HTMLElement | null)[] = [];
    if (!r.publishable) {
      parts.push(el("p", { class: "muted", "data-testid": "publish-unavailable" }, "This template has no publish recipe, so the project cannot be published."));
    }
    if (r.live && r.url) {
      const copy = button("Copy", () => void this.copy(r.url!, copy), { "data-testid": "publish-copy", "aria-label": "Copy the app's URL" });
      const open = r.visibility === "members" ? openDeploymentUrl(this.projectId) : r.url;
      parts.push(
        el("div", { class: "publish-url" }, el("a", { href: r.url, target: "_blank", rel: "noopener", "data-testid": "publish-url" }, r.url)),
        el(
          "div",
          { class: "row" },
          copy,
          el("a", { href: open, target: "_blank", rel: "noopener", class: "btn", "data-testid": "publish-open" }, "Open"),
          el("span", { class: "badge live" }, `live: ${r.live}`),
        ),
      );
    } else {
      parts.push(el("p", { class: "muted" }, "Not published."));
    }
    const vis = el(
      "select",
      { "aria-label": "Who can open the app", "data-testid": "publish-visibility", class: "editor-only" },
      el("option", { value: "public" }, "Public"),
      el("option", { value: "members" }, "Members only"),
    );
    vis.value = r.visibility;
    vis.addEventListener("change", () => void this.visibility(vis.value as Visibility, vis));
    parts.push(
      el(
        "div",
        { class: "row" },
        el("span", { class: "muted" }, "Visibility"),
        vis,
        el("span", { class: "viewer-only" }, r.visibility === "members" ? "members only" : "public"),
        r.live ? button("Unpublish", () => void this.unpublish(), { class: "danger editor-only", "data-testid": "publish-unpublish" }) : null,
      ),
    );
    this.head.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
  }

  private renderHistory(): void {
    const ds = this.reply?.deployments ?? [];
    if (!ds.length) {
      this.history.replaceChildren(el("li", { class: "muted" }, this.reply ? "No deployments yet." : ""));
      return;
    }
    this.history.replaceChildren(
      ...ds.map((d) => {
        const facts = [`${d.files} files`, `${d.uploaded}/${d.total} uploaded`, d.backend ? "backend" : "", d.duration_ms !== undefined ? formatMs(d.duration_ms) : ""];
        const li = el(
          "li",
          { "data-testid": "deploy-row", "data-id": d.id, "data-status": d.status },
          el(
            "div",
            { class: "cp-head" },
            el("strong", {}, d.id),
            el("span", { class: "muted" }, `#${d.checkpoint}`),
            el("span", { class: `badge ${d.status}` }, d.status),
            el("span", { class: "muted" }, timeAgo(d.created_ms)),
          ),
          el("div", { class: "muted" }, facts.filter(Boolean).join(" · ")),
          d.error ? el("div", { class: "bad deploy-error", title: d.error }, d.error) : null,
        );
        const actions = el("div", { class: "row" });
        if (d.status === "previous" || d.status === "stopped") {
          actions.append(button("Roll back", () => void this.rollback(d), { class: "editor-only", "data-testid": "deploy-rollback", "aria-label": `Roll back to ${d.id}` }));
        }
        if (d.status === "live" && d.backend) {
          actions.append(button("Logs", () => void this.backendLogs(d, li), { "data-testid": "deploy-logs", "aria-label": `Backend log of ${d.id}` }));
        }
        if (actions.childElementCount) li.append(actions);
        return li;
      }),
    );
  }

  // --- Actions -------------------------------------------------------------------------------

  private async copy(url: string, b: HTMLButtonElement): Promise<void> {
    try {
      await navigator.clipboard.writeText(url);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Copy failed";
    }
    setTimeout(() => (b.textContent = "Copy"), 1500);
  }

  private async visibility(v: Visibility, sel: HTMLSelectElement): Promise<void> {
    try {
      this.reply = await setVisibility(this.projectId, v);
      this.showError(null);
    } catch (e) {
      if (this.reply) sel.value = this.reply.visibility;
      this.showError(`Cannot change visibility: ${message(e)}`);
    }
    this.render();
  }

  private async unpublish(): Promise<void> {
    const ok = await confirmDialog(
      "Unpublish the app?",
      "Its URL answers 404 and its backend stops (its data folder stays). You can roll back to this deployment later.",
      "Unpublish",
    );
    if (!ok) return;
    try {
      this.reply = await unpublish(this.projectId);
      this.showError(null);
    } catch (e) {
      this.showError(`Cannot unpublish: ${message(e)}`);
    }
    this.render();
  }

  private async rollback(d: Deployment): Promise<void> {
    const ok = await confirmDialog(
      `Roll back to ${d.id}?`,
      `The live app switches to ${d.id} (checkpoint #${d.checkpoint}): its static files at once, its backend started again behind its health check.`,
      "Roll back",
    );
    if (!ok) return;
    try {
      this.updated(await rollbackDeployment(this.projectId, d.id));
      this.showError(null);
    } catch (e) {
      this.showError(`Rollback failed: ${message(e)}`);
    }
  }

  /** Toggles the live backend's last 200 log lines under its row. */
  private async backendLogs(d: Deployment, li: HTMLElement): Promise<void> {
    const old = li.querySelector(".backend-log");
    if (old) {
      old.remove();
      return;
    }
    const pre = el("pre", { class: "publish-log backend-log", "data-testid": "deploy-logs-output" }, "Loading…");
    li.append(pre);
    try {
      const r = await deploymentLogs(this.projectId, d.id, 200);
      pre.replaceChildren(...r.lines.map((l) => el("span", { class: l.stream }, `${l.line}\n`)));
      if (!r.lines.length) pre.textContent = `(no output; ${r.status})`;
    } catch (e) {
      pre.textContent = `Cannot read the log: ${message(e)}`;
    }
  }
}
