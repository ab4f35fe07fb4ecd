// Accounts in the IDE: the sign-in page (when the server runs with sign-in and nobody is signed
// in), the signed-in person with Sign out in the top bar, personal API tokens, the Share dialog
// of a project, and the read-only view for viewers (`body[data-role="viewer"]`).

import { apiBase, HttpError } from "./api";
import { el } from "./dom";

export interface User {
  id: string;
  name: string;
  email?: string | null;
  login?: string | null;
  provider: string;
}

interface AuthInfo {
  mode: "local" | "signin" | "open";
  providers: string[];
}

interface Member {
  user_id: string | null;
  name: string;
  handle: string;
  role: "owner" | "editor" | "viewer";
}

interface TokenInfo {
  id: string;
  name: string;
  created_ms: number;
  last_used_ms?: number | null;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(apiBase + path, {
    method,
    headers: body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const v: unknown = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = (v as { error?: { message?: string } } | null)?.error?.message ?? `${method} ${path}: HTTP ${r.status}`;
    throw new HttpError(r.status, v, msg);
  }
  return v as T;
}

const PROVIDER_NAMES: Record<string, string> = { oidc: "Sign in", github: "Sign in with GitHub" };

function signInPage(app: HTMLElement, auth: AuthInfo): void {
  const next = location.pathname + location.search;
  const buttons = auth.providers.map((p) =>
    el("a", { class: "btn primary", id: `sign-in-${p}`, href: `${apiBase}/auth/login?provider=${p}&next=${encodeURIComponent(next)}` }, PROVIDER_NAMES[p] ?? p),
  );
  app.replaceChildren(
    el(
      "section",
      { class: "card sign-in", id: "sign-in", "aria-label": "Sign in" },
      el("h1", {}, "Sign in to open-replit"),
      el("p", { class: "muted" }, "Your projects, and those shared with you, are waiting."),
      el("div", { class: "row" }, ...buttons),
    ),
  );
  const status = document.getElementById("status");
  if (status) status.textContent = "signed out";
}

async function signOut(): Promise<void> {
  await call("POST", "/auth/logout");
  location.assign("/");
}

function dialog(title: string, id: string, ...body: HTMLElement[]): HTMLDialogElement {
  const d = el("dialog", { class: "dialog", id, "aria-label": title });
  const close = el("button", { type: "button", class: "btn", id: `${id}-close` }, "Close");
  close.addEventListener("click", () => d.close());
  d.append(el("h2", {}, title), ...body, el("div", { class: "row" }, close));
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

async function tokensDialog(): Promise<void> {
  const list = el("ul", { class: "token-list", id: "token-list" });
  const name = el("input", { type: "text", id: "token-name", "aria-label": "Token name", placeholder: "what it is for", maxlength: "100" });
  const secret = el("p", { class: "token-secret", id: "token-secret", role: "status" });
  const err = el("p", { class: "bad", role: "alert" });
  const create = el("button", { type: "submit", class: "primary", id: "token-create" }, "Create token");
  const form = el("form", { class: "row" }, name, create);
  async function refresh(): Promise<void> {
    const { tokens } = await call<{ tokens: TokenInfo[] }>("GET", "/api/tokens");
    list.replaceChildren(
      ...tokens.map((t) => {
        const del = el("button", { type: "button", class: "btn danger", "aria-label": `Delete token ${t.name}` }, "Delete");
        del.addEventListener("click", async () => {
          await call("DELETE", `/api/tokens/${t.id}`);
          await refresh();
        });
        return el("li", {}, el("span", {}, `${t.name} · created ${new Date(t.created_ms).toLocaleString()}`), del);
      }),
    );
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const r = await call<{ secret: string }>("POST", "/api/tokens", { name: name.value });
      secret.textContent = `Copy it now, it is shown once: ${r.secret}`;
      name.value = "";
      await refresh();
    } catch (x) {
      err.textContent = x instanceof Error ? x.message : String(x);
    }
  });
  dialog("Personal API tokens", "tokens", el("p", { class: "muted" }, "For scripts: send Authorization: Bearer <token>."), form, secret, err, list);
  await refresh().catch((x) => (err.textContent = String(x)));
}

async function shareDialog(project: string): Promise<void> {
  const list = el("ul", { class: "member-list", id: "member-list" });
  const handle = el("input", { type: "text", id: "invite-handle", "aria-label": "Email or @github-login", placeholder: "email or @github-login" });
  const role = el("select", { id: "invite-role", "aria-label": "Role" }, el("option", { value: "viewer" }, "viewer"), el("option", { value: "editor" }, "editor"));
  const err = el("p", { class: "bad", role: "alert" });
  const form = el("form", { class: "row" }, handle, role, el("button", { type: "submit", class: "primary", id: "invite" }, "Invite"));
  const base = `/projects/${project}/members`;
  async function refresh(): Promise<void> {
    const { members } = await call<{ members: Member[] }>("GET", base);
    list.replaceChildren(
      ...members.map((m) => {
        const li = el("li", {}, el("span", {}, `${m.name} (${m.handle}) · ${m.role}${m.user_id ? "" : " · invited"}`));
        if (m.role !== "owner") {
          const rm = el("button", { type: "button", class: "btn danger", "aria-label": `Remove ${m.handle}` }, "Remove");
          rm.addEventListener("click", async () => {
            await call("DELETE", `${base}/${encodeURIComponent(m.user_id ?? m.handle)}`);
            await refresh();
          });
          li.append(rm);
        }
        return li;
      }),
    );
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      await call("POST", base, { handle: handle.value, role: role.value });
      handle.value = "";
      await refresh();
    } catch (x) {
      err.textContent = x instanceof Error ? x.message : String(x);
    }
  });
  dialog("Share this project", "share", form, err, list);
  await refresh().catch((x) => (err.textContent = String(x)));
}

/**
 * Asks who is signed in. Returns false when the page must not go on (the sign-in page is shown
 * instead); otherwise puts the person and their menu in the top bar.
 */
export async function initAccount(app: HTMLElement): Promise<boolean> {
  const slot = document.getElementById("account");
  let auth: AuthInfo = { mode: "local", providers: [] };
  try {
    auth = (await call<{ auth?: AuthInfo }>("GET", "/api/config")).auth ?? auth;
  } catch {
    return true; // the page's own calls will say the API is unreachable
  }
  let user: User;
  try {
    user = (await call<{ user: User }>("GET", "/api/me")).user;
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) {
      signInPage(app, auth);
      return false;
    }
    return true;
  }
  document.body.dataset.authMode = auth.mode;
  document.body.dataset.userId = user.id;
  if (!slot) return true;
  const who = el("span", { class: "who", id: "who", title: user.email ?? user.login ?? user.id }, user.name);
  slot.replaceChildren(who);
  if (auth.mode === "signin") {
    const tokens = el("button", { type: "button", class: "btn", id: "open-tokens" }, "API tokens");
    tokens.addEventListener("click", () => void tokensDialog());
    const out = el("button", { type: "button", class: "btn", id: "sign-out" }, "Sign out");
    out.addEventListener("click", () => void signOut());
    slot.append(tokens, out);
  }
  return true;
}

/** On a project page: the caller's role (viewers get the read-only view) and, for the owner
 * with sign-in, the Share button. */
export async function initProjectAccess(id: string): Promise<void> {
  let role = "owner";
  try {
    const { projects } = await call<{ projects: { id: string; role?: string }[] }>("GET", "/projects");
    role = projects.find((p) => p.id === id)?.role ?? "owner";
  } catch {
    return;
  }
  document.body.dataset.role = role;
  const slot = document.getElementById("account");
  if (role === "owner" && document.body.dataset.authMode === "signin" && slot) {
    const share = el("button", { type: "button", class: "btn", id: "open-share" }, "Share");
    share.addEventListener("click", () => void shareDialog(id));
    slot.prepend(share);
  }
  if (role === "viewer") {
    const input = document.getElementById("chat-input") as HTMLTextAreaElement | null;
    if (input) {
      input.disabled = true;
      input.placeholder = "You are a viewer of this project: you can watch and read, not change it.";
    }
  }
}
