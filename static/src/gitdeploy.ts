// The Git & deploy panel and the header's Git button: the project's clone URL, a push to GitHub
// or any other remote, and external deploys (the backend to Modal, the frontend to Netlify) with
// their steps per target and their log, live from the socket's `external_deploy` and `x-N`
// `deploy_log` events.

import {
  deployExternally,
  gitCloneUrl,
  HttpError,
  listExternalDeploys,
  pushToGithub,
  pushToRemote,
  type ExternalDeploy,
  type ExternalDeployTarget,
  type ExternalTarget,
  type GitPush,
} from "./api";
import { button, el, formatMs, timeAgo } from "./dom";
import { settingsLink } from "./settings";
import type { ServerEvent } from "./socket";

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
/** `x-12` → 12, to keep the history newest first. */
const num = (d: ExternalDeploy): number => Number(d.id.slice(2)) || 0;
const short = (commit: string): string => commit.slice(0, 7);
/** Characters of streamed output kept per deploy (the oldest go first). */
const STREAM_CAP = 200_000;
/** The credentials in Settings → Deploy credentials; an error naming one links there. */
const CREDENTIALS = ["GITHUB_TOKEN", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "NETLIFY_AUTH_TOKEN"];

const TARGETS: Record<ExternalTarget, { label: string; what: string; needs: string }> = {
  modal: { label: "Modal", what: "the backend", needs: "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET" },
  netlify: { label: "Netlify", what: "the frontend", needs: "NETLIFY_AUTH_TOKEN" },
};

/** A project name made into a GitHub repository name: letters, digits, `.`, `-` and `_`. */
export function repoName(name: string): string {
  const r = name
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 100);
  return r || "app";
}

/** Shows `msg` in `box` (or hides it), with a link to Settings when it names a credential. */
function showError(box: HTMLElement, msg: string | null): void {
  box.hidden = msg === null;
  const link = msg !== null && CREDENTIALS.some((c) => msg.includes(c));
  box.replaceChildren(msg ?? "", link ? el("span", {}, " ", settingsLink("Open Settings → Deploy credentials")) : "");
}

function pushedLine(p: GitPush): HTMLElement {
  return el("span", {}, "pushed commit ", el("code", { title: p.commit }, short(p.commit)), ` (checkpoint #${p.checkpoint}) to ${p.branch}`);
}

/** A deploy's row: its log box, whose `pre` holds the streamed output (`streamed`), or the record's lines when none streamed here. */
interface Row {
  li: HTMLElement;
  details: HTMLDetailsElement;
  pre: HTMLPreElement;
  streamed: HTMLElement;
}

export class GitPanel {
  readonly root: HTMLElement;
  /** The header's Git button: opens this panel. */
  readonly button: HTMLButtonElement;
  private githubRepo: HTMLInputElement;
  private githubPrivate: HTMLInputElement;
  private githubPush: HTMLButtonElement;
  private githubResult: HTMLElement;
  private githubError: HTMLElement;
  private remoteUrl: HTMLInputElement;
  private remoteBranch: HTMLInputElement;
  private remoteUser: HTMLInputElement;
  private remoteToken: HTMLInputElement;
  private remotePush: HTMLButtonElement;
  private remoteResult: HTMLElement;
  private remoteError: HTMLElement;
  private targetsBox: HTMLElement;
  private deployNote: HTMLElement;
  private deployButton: HTMLButtonElement;
  private deployError: HTMLElement;
  private history: HTMLElement;
  private available: ExternalTarget[] | null = null;
  private netlifySite: string | undefined;
  private deploys: ExternalDeploy[] = [];
  /** Streamed output per deploy id, kept across re-renders of its row. */
  private streams = new Map<string, { stream: string; data: string }[]>();
  private rows = new Map<string, Row>();
  private busy = false;
  private loaded = false;

  constructor(
    private projectId: string,
    projectName: string,
    reveal: () => void,
  ) {
    this.button = button("Git & deploy", reveal, { "data-testid": "git-button", title: "Clone, push to GitHub or another remote, deploy to Modal and Netlify" });

    // Clone.
    const url = gitCloneUrl(projectId);
    const copy = button("Copy", () => void this.copy(url, copy), { "data-testid": "git-clone-copy", "aria-label": "Copy the clone URL" });
    const clone = el(
      "section",
      { "aria-labelledby": "git-clone-h" },
      el("h3", { id: "git-clone-h" }, "Clone"),
      el("div", { class: "publish-url" }, el("code", { "data-testid": "git-clone-url" }, url)),
      el("div", { class: "row" }, copy),
      el("p", { class: "muted" }, "Every checkpoint is a commit: git clone or pull this URL. With sign-in, git asks for a password: give it a personal API token (API tokens, in the top bar)."),
    );

    // Push to GitHub.
    this.githubRepo = el("input", { type: "text", placeholder: repoName(projectName), autocomplete: "off", spellcheck: "false", "data-testid": "github-repo" });
    this.githubPrivate = el("input", { type: "checkbox", checked: true, "data-testid": "github-private" });
    this.githubPush = el("button", { type: "submit", class: "primary", "data-testid": "github-push" }, "Push to GitHub");
    this.githubResult = el("div", { class: "ok", role: "status", "data-testid": "github-result", hidden: true });
    this.githubError = el("div", { class: "bad", role: "alert", "data-testid": "github-error", hidden: true });
    const github = el(
      "form",
      { class: "side-form editor-only", "aria-labelledby": "git-github-h" },
      el("h3", { id: "git-github-h" }, "Push to GitHub"),
      el("label", {}, "Repository (under your account)", this.githubRepo),
      el("label", { class: "inline" }, this.githubPrivate, "Private"),
      el("div", { class: "row" }, this.githubPush),
      el("p", { class: "muted" }, "Creates the repository when it does not exist, with your GITHUB_TOKEN (", settingsLink(), ")."),
      this.githubResult,
      this.githubError,
    );
    github.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.pushGithub();
    });

    // Push to another remote.
    this.remoteUrl = el("input", { type: "url", required: true, placeholder: "https://git.example.com/you/app.git", autocomplete: "off", spellcheck: "false", "data-testid": "remote-url" });
    this.remoteBranch = el("input", { type: "text", placeholder: "main", autocomplete: "off", spellcheck: "false", "data-testid": "remote-branch" });
    this.remoteUser = el("input", { type: "text", placeholder: "optional", autocomplete: "off", spellcheck: "false", "data-testid": "remote-username" });
    this.remoteToken = el("input", { type: "password", placeholder: "optional", autocomplete: "off", "data-testid": "remote-token" });
    this.remotePush = el("button", { type: "submit", "data-testid": "remote-push" }, "Push");
    this.remoteResult = el("div", { class: "ok", role: "status", "data-testid": "remote-result", hidden: true });
    this.remoteError = el("div", { class: "bad", role: "alert", "data-testid": "remote-error", hidden: true });
    const remote = el(
      "form",
      { class: "side-form editor-only", "aria-labelledby": "git-remote-h" },
      el("h3", { id: "git-remote-h" }, "Push to another remote"),
      el("label", {}, "Remote URL (https)", this.remoteUrl),
      el("label", {}, "Branch", this.remoteBranch),
      el("label", {}, "Username", this.remoteUser),
      el("label", {}, "Token or password", this.remoteToken),
      el("div", { class: "row" }, this.remotePush),
      el("p", { class: "muted" }, "The token is used for this one push and is not stored."),
      this.remoteResult,
      this.remoteError,
    );
    remote.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.pushRemote();
    });

    // Deploy to Modal / Netlify.
    this.targetsBox = el("div", { class: "row", role: "group", "aria-label": "Deploy targets" });
    this.deployNote = el("div", { class: "muted" });
    this.deployButton = button("Deploy", () => void this.deploy(), { class: "primary", "data-testid": "deploy-button" });
    this.deployError = el("div", { class: "bad", role: "alert", "data-testid": "deploy-x-error", hidden: true });
    this.history = el("ol", { class: "deploys", "aria-label": "External deploys" });
    const deploy = el(
      "section",
      { class: "editor-only", "aria-labelledby": "git-deploy-h" },
      el("h3", { id: "git-deploy-h" }, "Deploy to Modal / Netlify"),
      this.targetsBox,
      this.deployNote,
      el("div", { class: "row" }, this.deployButton),
      this.deployError,
      this.history,
    );

    this.root = el("div", { class: "publish git", id: "git-panel", "data-testid": "git-panel" }, clone, github, remote, deploy);
    this.render();
  }

  /** Loads the external deploys and the targets this server offers. */
  async refresh(): Promise<void> {
    try {
      const r = await listExternalDeploys(this.projectId);
      this.available = r.available;
      this.netlifySite = r.netlify_site;
      // The answer is the record of truth; records the socket brought meanwhile are in it too.
      this.deploys = [...r.deploys].sort((a, b) => num(b) - num(a));
      showError(this.deployError, null);
    } catch (e) {
      this.available = [];
      showError(this.deployError, e instanceof HttpError && e.status === 404 ? "External deploys are not available on this server." : `Cannot list external deploys: ${message(e)}`);
    }
    this.loaded = true;
    this.render();
  }

  /** Loads once, the first time the panel is shown. */
  shown(): void {
    if (!this.loaded) void this.refresh();
  }

  handle(e: ServerEvent): void {
    switch (e.type) {
      case "external_deploy":
        this.upsert(e.deploy);
        break;
      case "deploy_log":
        if (e.deployment.startsWith("x-")) this.appendLog(e.deployment, e.stream, e.data);
        break;
      case "reset":
        if (this.loaded) void this.refresh();
        break;
      default:
        break;
    }
  }

  // --- Git -------------------------------------------------------------------------------------

  private async copy(text: string, b: HTMLButtonElement): Promise<void> {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Copy failed";
    }
    setTimeout(() => (b.textContent = "Copy"), 1500);
  }

  private async pushGithub(): Promise<void> {
    const repo = this.githubRepo.value.trim();
    this.githubPush.disabled = true;
    this.githubPush.textContent = "Pushing…";
    this.githubResult.hidden = true;
    showError(this.githubError, null);
    try {
      const r = await pushToGithub(this.projectId, repo || undefined, this.githubPrivate.checked);
      this.githubResult.replaceChildren(
        r.created ? "Created " : "Updated ",
        el("a", { href: r.repo.html_url, target: "_blank", rel: "noopener" }, r.repo.full_name),
        r.repo.private ? " (private)" : " (public)",
        ": ",
        pushedLine(r.push),
        ".",
      );
      this.githubResult.hidden = false;
    } catch (e) {
      showError(this.githubError, message(e));
    } finally {
      this.githubPush.disabled = false;
      this.githubPush.textContent = "Push to GitHub";
    }
  }

  private async pushRemote(): Promise<void> {
    const url = this.remoteUrl.value.trim();
    const token = this.remoteToken.value;
    // The token is for this push only: out of the page before the answer comes.
    this.remoteToken.value = "";
    this.remotePush.disabled = true;
    this.remotePush.textContent = "Pushing…";
    this.remoteResult.hidden = true;
    showError(this.remoteError, null);
    try {
      const p = await pushToRemote(this.projectId, {
        url,
        branch: this.remoteBranch.value.trim() || undefined,
        username: this.remoteUser.value.trim() || undefined,
        token: token || undefined,
      });
      this.remoteResult.replaceChildren("Done: ", pushedLine(p), ` at ${p.url}.`);
      this.remoteResult.hidden = false;
    } catch (e) {
      showError(this.remoteError, message(e));
    } finally {
      this.remotePush.disabled = false;
      this.remotePush.textContent = "Push";
    }
  }

  // --- External deploys ------------------------------------------------------------------------

  private selectedTargets(): ExternalTarget[] {
    return [...this.targetsBox.querySelectorAll<HTMLInputElement>("input[data-target]")].filter((c) => c.checked).map((c) => c.dataset.target as ExternalTarget);
  }

  private async deploy(): Promise<void> {
    const targets = this.selectedTargets();
    if (!targets.length) return;
    this.busy = true;
    showError(this.deployError, null);
    this.renderButton();
    try {
      this.upsert(await deployExternally(this.projectId, targets));
    } catch (e) {
      showError(this.deployError, `Deploy failed: ${message(e)}`);
    } finally {
      this.busy = false;
      this.renderButton();
    }
  }

  private upsert(d: ExternalDeploy): void {
    const list = this.deploys.filter((x) => x.id !== d.id);
    list.push(d);
    list.sort((a, b) => num(b) - num(a));
    this.deploys = list;
    this.renderButton();
    this.renderHistory();
  }

  private appendLog(id: string, stream: string, data: string): void {
    const chunks = this.streams.get(id) ?? [];
    chunks.push({ stream, data });
    let size = chunks.reduce((n, c) => n + c.data.length, 0);
    while (size > STREAM_CAP && chunks.length > 1) size -= chunks.shift()!.data.length;
    this.streams.set(id, chunks);
    const row = this.rows.get(id);
    if (!row) return;
    const pre = row.pre;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    row.streamed.append(el("span", { class: stream }, data));
    while (row.streamed.childElementCount > chunks.length) row.streamed.firstElementChild?.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  private render(): void {
    this.renderTargets();
    this.renderButton();
    this.renderHistory();
  }

  private renderTargets(): void {
    const av = this.available;
    if (av === null) {
      this.targetsBox.replaceChildren(el("span", { class: "muted" }, "Loading…"));
      this.deployNote.replaceChildren();
      return;
    }
    // Keep what the person ticked when the same targets come back.
    const had = new Map([...this.targetsBox.querySelectorAll<HTMLInputElement>("input[data-target]")].map((c) => [c.dataset.target!, c.checked]));
    this.targetsBox.replaceChildren(
      ...(av.length
        ? av.map((t) => {
            const c = el("input", { type: "checkbox", "data-testid": "deploy-target", "data-target": t, checked: had.get(t) ?? true });
            c.addEventListener("change", () => this.renderButton());
            return el("label", { class: "inline" }, c, TARGETS[t]?.label ?? t);
          })
        : [el("span", { class: "muted" }, "No external deploy targets on this server.")]),
    );
    const needs = av.map((t) => (TARGETS[t] ? `${TARGETS[t].label} deploys ${TARGETS[t].what} and needs ${TARGETS[t].needs}` : t));
    const notes: HTMLElement[] = [];
    if (av.length) notes.push(el("p", {}, `${needs.join("; ")} (`, settingsLink(), ")."));
    if (av.includes("netlify")) notes.push(el("p", {}, "The frontend is built with VITE_API_URL set to the Modal backend's URL."));
    if (this.netlifySite) notes.push(el("p", {}, "Netlify site: ", el("code", {}, this.netlifySite)));
    this.deployNote.replaceChildren(...notes);
  }

  private renderButton(): void {
    const running = this.deploys.some((d) => d.status === "running");
    this.deployButton.disabled = this.busy || running || !this.available?.length || !this.selectedTargets().length;
    this.deployButton.textContent = this.busy || running ? "Deploying…" : "Deploy";
  }

  private renderHistory(): void {
    if (!this.deploys.length) {
      this.rows.clear();
      this.history.replaceChildren(el("li", { class: "muted" }, this.loaded ? "No external deploys yet." : ""));
      return;
    }
    const rows = new Map<string, Row>();
    for (const d of this.deploys) rows.set(d.id, this.row(d));
    this.rows = rows;
    this.history.replaceChildren(...[...rows.values()].map((r) => r.li));
  }

  private row(d: ExternalDeploy): Row {
    const prev = this.rows.get(d.id);
    // The output streamed to this page; else (a reload, another tab's deploy) the record's log,
    // which keeps the same output's last lines: never both, so nothing shows twice.
    const chunks = this.streams.get(d.id) ?? [];
    const streamed = el("span", {}, ...chunks.map((c) => el("span", { class: c.stream }, c.data)));
    const kept = chunks.length ? [] : d.log.map((l) => el("span", { class: "system" }, `${l}\n`));
    const out = el("pre", { class: "publish-log" }, ...kept, streamed);
    const details = el("details", { class: "publish-log-box", "data-testid": "deploy-x-log" }, el("summary", {}, "Log"), out);
    // Open while it runs or when it failed, unless the person closed or opened it themselves.
    details.open = prev ? prev.details.open : d.status !== "done";
    if (prev && prev.pre.scrollTop + prev.pre.clientHeight < prev.pre.scrollHeight - 4) {
      const top = prev.pre.scrollTop;
      requestAnimationFrame(() => (out.scrollTop = top));
    } else {
      requestAnimationFrame(() => (out.scrollTop = out.scrollHeight));
    }
    const took = d.finished_ms !== undefined ? formatMs(d.finished_ms - d.created_ms) : "";
    const li = el(
      "li",
      { "data-testid": "deploy-x-row", "data-id": d.id, "data-status": d.status },
      el(
        "div",
        { class: "cp-head" },
        el("strong", {}, d.id),
        el("span", { class: "muted" }, `#${d.checkpoint}`),
        el("span", { class: `badge ${d.status}` }, d.status),
        el("span", { class: "muted" }, timeAgo(d.created_ms)),
        took ? el("span", { class: "muted" }, took) : null,
      ),
      el("ol", { class: "publish-steps", "aria-label": `Targets of ${d.id}` }, ...d.targets.map((t) => this.target(t))),
      details,
    );
    return { li, details, pre: out, streamed };
  }

  private target(t: ExternalDeployTarget): HTMLElement {
    const state = t.status === "running" ? "active" : t.status;
    const facts: (HTMLElement | string)[] = [];
    if (t.total !== undefined) facts.push(`uploaded ${t.uploaded ?? 0} of ${t.total} files`);
    if (t.message) facts.push(t.message);
    return el(
      "li",
      { class: `step ${state}`, "data-testid": "deploy-x-target", "data-target": t.target, "data-status": t.status },
      el("span", { class: "step-name" }, TARGETS[t.target]?.label ?? t.target),
      el("span", { class: `badge ${t.status}` }, t.status),
      t.url ? el("a", { href: t.url, target: "_blank", rel: "noopener", class: "step-msg", "data-testid": "deploy-x-url" }, t.url) : null,
      facts.length ? el("span", { class: t.status === "failed" ? "step-msg bad" : "step-msg" }, facts.join(" · ")) : null,
    );
  }
}
