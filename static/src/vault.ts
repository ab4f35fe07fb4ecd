// Deploy credentials: the person's own tokens for pushing to GitHub and deploying to Modal and
// Netlify, kept sealed on the server. The page sends a value once and only ever sees whether it
// is set, when, and its last 4 characters.

import { getVault, removeVaultSecret, saveVaultSecret, type KnownCredential, type SecretInfo, type VaultReply } from "./api";
import { button, el, timeAgo } from "./dom";

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** "set (…abcd, updated 3 min ago)" or "not set". */
export function secretState(s: SecretInfo | undefined): string {
  if (!s) return "not set";
  return `set (${s.last4 ? `…${s.last4}, ` : ""}updated ${timeAgo(s.updated_ms)})`;
}

export function vaultPanel(): HTMLElement {
  const list = el("ul", { class: "secret-list", "aria-label": "Deploy credentials" }, el("li", { class: "muted" }, "Loading…"));
  const error = el("p", { class: "bad", role: "alert", "data-testid": "vault-error", hidden: true });
  const showError = (msg: string | null): void => {
    error.hidden = msg === null;
    error.textContent = msg ?? "";
  };

  const show = (r: VaultReply): void => {
    const stored = new Map(r.secrets.map((s) => [s.name, s]));
    // Every credential the server knows, then any stored one it no longer lists (removable).
    const rows: KnownCredential[] = [...r.known, ...r.secrets.filter((s) => !r.known.some((k) => k.name === s.name)).map((s) => ({ name: s.name, label: s.name, used_by: "" }))];
    list.replaceChildren(...rows.map((k) => row(k, stored.get(k.name))));
  };

  const row = (k: KnownCredential, s: SecretInfo | undefined): HTMLElement => {
    const input = el("input", {
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": `New value for ${k.name}`,
      placeholder: s ? "replace the value" : "paste the value",
      "data-testid": "vault-input",
    });
    const save = el("button", { type: "submit", "data-testid": "vault-save", "aria-label": `Save ${k.name}` }, "Save");
    const remove = button("Remove", () => void act(save, remove, () => removeVaultSecret(k.name)), {
      class: "danger",
      "data-testid": "vault-remove",
      "aria-label": `Remove ${k.name}`,
      hidden: !s,
    });
    const form = el("form", { class: "row" }, input, save, remove);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = input.value;
      // The value leaves the page once: the input is emptied before the answer comes.
      input.value = "";
      if (value.trim()) void act(save, remove, () => saveVaultSecret(k.name, value.trim()));
    });
    return el(
      "li",
      { "data-testid": "vault-row", "data-name": k.name, "data-set": s ? "true" : "false" },
      el("div", { class: "cp-head" }, el("code", {}, k.name), el("span", { class: `badge${s ? " live" : ""}`, "data-testid": "vault-state" }, secretState(s))),
      k.label !== k.name || k.used_by ? el("div", { class: "muted" }, [k.label !== k.name ? k.label : "", k.used_by ? `used for: ${k.used_by}` : ""].filter(Boolean).join(" · ")) : null,
      form,
    );
  };

  async function act(save: HTMLButtonElement, remove: HTMLButtonElement, f: () => Promise<VaultReply>): Promise<void> {
    save.disabled = remove.disabled = true;
    try {
      show(await f());
      showError(null);
    } catch (e) {
      showError(message(e));
      save.disabled = remove.disabled = false;
    }
  }

  void getVault()
    .then(show)
    .catch((e) => {
      list.replaceChildren();
      showError(`Cannot read your deploy credentials: ${message(e)}`);
    });
  return el(
    "section",
    { class: "vault", id: "vault-panel", "data-testid": "vault-panel", "aria-labelledby": "vault-h" },
    el("h3", { id: "vault-h" }, "Deploy credentials"),
    el("p", { class: "muted" }, "Your own tokens for pushing to GitHub and deploying to Modal and Netlify, stored sealed on the server and used only for what you start. Their values are never shown again."),
    error,
    list,
  );
}
