// Typed calls to the Worker's HTTP API (docs/protocol.md). The base URL is fixed at build time
// (API_BASE) so the frontend can also be hosted on a separate origin.

declare const API_BASE: string;

export interface Check {
  ok: boolean;
  detail: string;
}

export interface LlmStatus {
  configured: boolean;
  providers: string[];
  base_url: string | null;
  default_model: string;
  setup_hint: string | null;
}

export interface Health {
  ok: boolean;
  azure_blob: Check;
  vm_api: Check;
  llm: LlmStatus;
}

export interface PublicConfig {
  llm: LlmStatus;
}

export interface ProjectMeta {
  id: string;
  name: string;
  template: string;
  created_ms: number;
  owner: string | null;
}

export interface CheckpointInfo {
  n: number;
  parent: number | null;
  created_ms: number;
  author: "agent" | "user" | "system";
  summary: string;
  files: number;
  bytes: number;
  nonce: number;
}

export interface Diff {
  added: string[];
  modified: string[];
  deleted: string[];
}

export interface FileEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface Template {
  name: string;
  description: string;
  default: boolean;
  files: number;
}

export interface Model {
  id: string;
  name: string;
}

export interface PreviewState {
  running: boolean;
  url: string | null;
  processes: unknown[];
}

export const apiBase: string = typeof API_BASE === "string" ? API_BASE : "";

/** An HTTP error answer, with the parsed JSON body when there was one. */
export class HttpError extends Error {
  constructor(
    public status: number,
    public body: unknown,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}): Promise<T> {
  const r = await fetch(apiBase + path, {
    method,
    body,
    headers: { accept: "application/json", ...headers },
  });
  const text = await r.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    if (r.ok) throw new Error(`${path} answered HTTP ${r.status} with non-JSON`);
  }
  if (!r.ok) {
    const msg =
      (parsed as { error?: { message?: string } } | undefined)?.error?.message ??
      `${method} ${path}: HTTP ${r.status}`;
    throw new HttpError(r.status, parsed, msg);
  }
  return parsed as T;
}

const getJson = <T>(path: string): Promise<T> => call<T>("GET", path);
const postJson = <T>(path: string, body: unknown): Promise<T> =>
  call<T>("POST", path, JSON.stringify(body ?? {}), { "content-type": "application/json" });

/** `a/b c.txt` → `a/b%20c.txt`: the API wants each segment percent-encoded. */
export const encodePath = (p: string): string => p.split("/").map(encodeURIComponent).join("/");

const proj = (id: string): string => `/projects/${encodeURIComponent(id)}`;

export const getConfig = (): Promise<PublicConfig> => getJson<PublicConfig>("/api/config");
export const getHealth = (): Promise<Health> => getJson<Health>("/health");
export const listTemplates = (): Promise<{ templates: Template[] }> => getJson("/api/templates");
export const listProjects = (): Promise<{ projects: ProjectMeta[]; templates: string[] }> => getJson("/projects");
export const createProject = (name: string, template: string): Promise<{ project: ProjectMeta; checkpoint: CheckpointInfo }> =>
  postJson("/projects", { name: name || undefined, template: template || undefined });
/** `POST /projects/import`: a public git repository's files as a new project. */
export const importProject = (
  url: string,
  template?: string,
): Promise<{ project: ProjectMeta; checkpoint: CheckpointInfo; import: { commit: string; template_inferred: boolean; skipped: { path: string; reason: string }[] } }> =>
  postJson("/projects/import", { url, template: template || undefined });
/** `DELETE /projects/{id}` (the owner): the project, its history, chat and published app go for good. */
export const deleteProject = (id: string): Promise<{ deleted: string }> => call("DELETE", proj(id));
/** `POST /projects/{id}/fork`: a new project of the caller's with this one's current files. */
export const forkProject = (id: string, name?: string): Promise<{ project: ProjectMeta; checkpoint: CheckpointInfo }> =>
  postJson(`${proj(id)}/fork`, { name: name || undefined });
/** `PATCH /projects/{id}` (editors): a new name. */
export const renameProject = (id: string, name: string): Promise<{ project: ProjectMeta }> =>
  call("PATCH", proj(id), JSON.stringify({ name }), { "content-type": "application/json" });
export const getProject = (id: string): Promise<{ project: ProjectMeta; head: CheckpointInfo | null }> => getJson(proj(id));
export const listFiles = (id: string, at?: number): Promise<{ checkpoint: number; files: FileEntry[] }> =>
  getJson(`${proj(id)}/files${at ? `?at=${at}` : ""}`);
export const listCheckpoints = (id: string): Promise<{ checkpoints: CheckpointInfo[] }> => getJson(`${proj(id)}/checkpoints`);
export const checkpointDiff = (id: string, to: number, from: number): Promise<{ from: number; to: number; diff: Diff }> =>
  getJson(`${proj(id)}/checkpoints/${to}/diff?from=${from}`);
export const restoreCheckpoint = (id: string, n: number): Promise<{ checkpoint: CheckpointInfo }> =>
  postJson(`${proj(id)}/checkpoints/${n}/restore`, {});
export const exportUrl = (id: string): string => `${apiBase}${proj(id)}/export.zip`;

/** `/api/models` when the Worker has it, else the configured default alone. */
export async function listModels(): Promise<{ models: Model[]; default: string }> {
  try {
    return await getJson<{ models: Model[]; default: string }>("/api/models");
  } catch {
    const cfg = await getConfig();
    const d = cfg.llm.default_model;
    return { models: [{ id: d, name: d }], default: d };
  }
}

export interface FileText {
  text: string;
  checkpoint: number;
}

/** One file's text and the checkpoint it was read at (the `base` for saving it). */
export async function readFile(id: string, path: string, at?: number): Promise<FileText> {
  const r = await fetch(`${apiBase}${proj(id)}/files/${encodePath(path)}${at ? `?at=${at}` : ""}`);
  if (!r.ok) throw new HttpError(r.status, null, `GET ${path}: HTTP ${r.status}`);
  return { text: await r.text(), checkpoint: Number(r.headers.get("x-checkpoint") ?? "0") };
}

export interface Conflict {
  path: string;
  expected_sha256: string | null;
  actual_sha256: string | null;
  head: number;
}

export type WriteResult =
  | { ok: true; checkpoint: CheckpointInfo | null }
  | { ok: false; conflict: Conflict };

async function write(method: "PUT" | "DELETE", id: string, path: string, base: number, body?: string): Promise<WriteResult> {
  try {
    const r = await call<{ checkpoint: CheckpointInfo | null }>(
      method,
      `${proj(id)}/files/${encodePath(path)}?base=${base}`,
      body,
      body === undefined ? {} : { "content-type": "application/octet-stream" },
    );
    return { ok: true, checkpoint: r.checkpoint };
  } catch (e) {
    if (e instanceof HttpError && e.status === 409) {
      const b = (e.body ?? {}) as Partial<Conflict> & { error?: Partial<Conflict> };
      const c = { ...(b.error ?? {}), ...b } as Conflict;
      return { ok: false, conflict: { path, expected_sha256: c.expected_sha256 ?? null, actual_sha256: c.actual_sha256 ?? null, head: Number(c.head ?? 0) } };
    }
    throw e;
  }
}

export const saveFile = (id: string, path: string, base: number, text: string): Promise<WriteResult> =>
  write("PUT", id, path, base, text);
export const deleteFile = (id: string, path: string, base: number): Promise<WriteResult> => write("DELETE", id, path, base);

export const getPreview = (id: string): Promise<PreviewState> => getJson(`${proj(id)}/preview`);
export const startPreview = (id: string, restart = false): Promise<PreviewState> =>
  postJson(`${proj(id)}/preview/${restart ? "restart" : "start"}`, {});

export type TermLine =
  | { type: "stdout" | "stderr"; data: string }
  | { type: "exit"; exit_code: number | null; duration_ms: number; timed_out: boolean; truncated: boolean };

/** Runs a command through the terminal endpoint, calling `onLine` per NDJSON line; abort kills it. */
export async function runCommand(
  id: string,
  command: string,
  onLine: (l: TermLine) => void,
  signal: AbortSignal,
): Promise<void> {
  const r = await fetch(`${apiBase}${proj(id)}/terminal`, {
    method: "POST",
    body: JSON.stringify({ command }),
    headers: { "content-type": "application/json" },
    signal,
  });
  if (!r.ok || !r.body) {
    let msg = `HTTP ${r.status}`;
    try {
      msg = ((await r.json()) as { error?: { message?: string } }).error?.message ?? msg;
    } catch {
      /* not JSON */
    }
    throw new HttpError(r.status, null, msg);
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) onLine(JSON.parse(line) as TermLine);
    }
  }
  if (buf.trim()) onLine(JSON.parse(buf) as TermLine);
}

/** The WebSocket URL for a project, on the API origin. */
export function socketUrl(id: string, since: number | null): string {
  const base = apiBase || location.origin;
  const u = new URL(`${proj(id)}/ws`, base);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  if (since !== null) u.searchParams.set("since", String(since));
  return u.toString();
}

/** The interactive terminal's WebSocket URL (a shell session on the VM, through the Worker). */
export function ptyUrl(id: string, session: string, cols: number, rows: number): string {
  const base = apiBase || location.origin;
  const u = new URL(`${proj(id)}/pty`, base);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.searchParams.set("session", session);
  u.searchParams.set("cols", String(cols));
  u.searchParams.set("rows", String(rows));
  return u.toString();
}

/** `GET /api/quota`: the signed-in person's spending today and whether they stored a key. */
export interface QuotaStatus {
  user: string;
  spent_today: number;
  byok_spent_today: number;
  daily_cap: number | null;
  steps_in_flight: number;
  /** The key itself never comes back; only whether one is set and its last four characters. */
  key: { set: boolean; last4: string | null };
}
export const getQuota = (): Promise<QuotaStatus> => getJson("/api/quota");
export const saveOwnKey = (key: string): Promise<QuotaStatus["key"]> =>
  call("PUT", "/api/quota/key", JSON.stringify({ key }), { "content-type": "application/json" });
export const removeOwnKey = (): Promise<QuotaStatus["key"]> => call("DELETE", "/api/quota/key");

// Publishing (docs/protocol.md, "Publishing (Worker)"; core's `deploy::record`).
export type DeployStatus = "queued" | "building" | "starting" | "live" | "previous" | "failed" | "interrupted" | "stopped";
export type DeployStep = "queued" | "building" | "uploading" | "starting" | "live" | "failed";
export type Visibility = "public" | "members";

export interface Deployment {
  id: string;
  checkpoint: number;
  status: DeployStatus;
  created_ms: number;
  finished_ms?: number;
  by: string;
  site?: string;
  files: number;
  bytes: number;
  total: number;
  uploaded: number;
  backend: boolean;
  error?: string;
  last_lines?: string[];
  duration_ms?: number;
}

export interface DeploymentsReply {
  url?: string;
  slug?: string;
  live?: string;
  visibility: Visibility;
  publishable: boolean;
  deployments: Deployment[];
}

/** The VM API's `LogsReply` for a deployment's backend. */
export interface DeployLogs {
  name: string;
  status: "running" | "exited" | "stopped";
  exit_code: number | null;
  lines: { seq: number; stream: "stdout" | "stderr" | "system"; line: string; ts_ms: number }[];
}

const deps = (id: string): string => `${proj(id)}/deployments`;
export const listDeployments = (id: string): Promise<DeploymentsReply> => getJson(deps(id));
/** Answers when the deployment is live or failed; progress meanwhile comes from the socket. */
export const publishProject = (id: string, checkpoint?: number): Promise<Deployment> =>
  postJson(deps(id), checkpoint ? { checkpoint } : {});
export const rollbackDeployment = (id: string, d: string): Promise<Deployment> =>
  postJson(`${deps(id)}/${encodeURIComponent(d)}/rollback`, {});
export const setVisibility = (id: string, visibility: Visibility): Promise<DeploymentsReply> =>
  call("PUT", `${deps(id)}/visibility`, JSON.stringify({ visibility }), { "content-type": "application/json" });
export const unpublish = (id: string): Promise<DeploymentsReply> => call("DELETE", `${deps(id)}/live`);
export const deploymentLogs = (id: string, d: string, tail = 200): Promise<DeployLogs> =>
  getJson(`${deps(id)}/${encodeURIComponent(d)}/logs?tail=${tail}`);
/** Redirects a signed-in member to a `members` app with an access token. */
export const openDeploymentUrl = (id: string): string => `${apiBase}${deps(id)}/open`;

// Deploy credentials (the person's vault) and app secrets (per project): values go in and never
// come back; the server answers with names, when each was set and at most its last 4 characters.
export interface SecretInfo {
  name: string;
  updated_ms: number;
  last4?: string;
}

/** A credential the server knows how to use, and for what. */
export interface KnownCredential {
  name: string;
  label: string;
  used_by: string;
}

export interface VaultReply {
  secrets: SecretInfo[];
  known: KnownCredential[];
}

const putJson = <T>(path: string, body: unknown): Promise<T> =>
  call<T>("PUT", path, JSON.stringify(body), { "content-type": "application/json" });

export const getVault = (): Promise<VaultReply> => getJson("/api/vault");
export const saveVaultSecret = (name: string, value: string): Promise<VaultReply> => putJson(`/api/vault/${encodeURIComponent(name)}`, { value });
export const removeVaultSecret = (name: string): Promise<VaultReply> => call("DELETE", `/api/vault/${encodeURIComponent(name)}`);

const secrets = (id: string): string => `${proj(id)}/secrets`;
export const listSecrets = (id: string): Promise<{ secrets: SecretInfo[] }> => getJson(secrets(id));
export const saveSecret = (id: string, name: string, value: string): Promise<{ secrets: SecretInfo[] }> =>
  putJson(`${secrets(id)}/${encodeURIComponent(name)}`, { value });
export const removeSecret = (id: string, name: string): Promise<{ secrets: SecretInfo[] }> =>
  call("DELETE", `${secrets(id)}/${encodeURIComponent(name)}`);

// Git: the project's history as a repository (clone), pushed to GitHub or any remote.
/** What a push sent: the remote, the branch, the commit and the checkpoint it is. */
export interface GitPush {
  url: string;
  branch: string;
  commit: string;
  checkpoint: number;
}

export interface GithubPushReply {
  repo: { full_name: string; html_url: string; clone_url: string; private: boolean };
  created: boolean;
  push: GitPush;
}

export interface RemotePush {
  url: string;
  branch?: string;
  username?: string;
  token?: string;
}

/** The URL `git clone` takes: on the API's origin, which is the page's unless API_BASE says otherwise. */
export const gitCloneUrl = (id: string): string => `${apiBase || location.origin}${proj(id)}/git`;
export const pushToGithub = (id: string, repo: string | undefined, isPrivate: boolean): Promise<GithubPushReply> =>
  postJson(`${proj(id)}/git/github`, { repo, private: isPrivate });
export const pushToRemote = (id: string, body: RemotePush): Promise<GitPush> => postJson(`${proj(id)}/git/push`, body);

// External deploys: the backend to Modal, the frontend to Netlify (`x-N` ids; publishing's are `d-N`).
export type ExternalTarget = "modal" | "netlify";
export type ExternalDeployStatus = "running" | "done" | "failed";
export type ExternalTargetStatus = "pending" | "running" | "done" | "failed" | "skipped";

export interface ExternalDeployTarget {
  target: ExternalTarget;
  status: ExternalTargetStatus;
  url?: string;
  message?: string;
  uploaded?: number;
  total?: number;
}

export interface ExternalDeploy {
  id: string;
  checkpoint: number;
  by: string;
  created_ms: number;
  finished_ms?: number;
  status: ExternalDeployStatus;
  targets: ExternalDeployTarget[];
  log: string[];
}

export interface ExternalDeploysReply {
  /** Newest first. */
  deploys: ExternalDeploy[];
  available: ExternalTarget[];
  netlify_site?: string;
}

export const listExternalDeploys = (id: string): Promise<ExternalDeploysReply> => getJson(`${proj(id)}/deploy`);
/** Answers when every target is done or failed; progress meanwhile comes from the socket. */
export const deployExternally = (id: string, targets: ExternalTarget[]): Promise<ExternalDeploy> => postJson(`${proj(id)}/deploy`, { targets });
