// The usage panel: today's spending against the operator's cap, and the person's own
// OpenRouter key (stored sealed on the server; the page only ever sees its last 4 characters).
// The Settings dialog (top bar, every page): the person's deploy credentials.

import { getQuota, removeOwnKey, saveOwnKey, type QuotaStatus } from "./api";
import { button, el } from "./dom";
import { vaultPanel } from "./vault";

const usd = (x: number): string => `$${x.toFixed(x < 1 ? 4 : 2)}`;

export function usagePanel(): HTMLElement {
  const spend = el("p", { id: "spend-today" }, "Loading…");
  const keyState = el("p", { id: "own-key-state", class: "muted" });
  const input = el("input", {
    type: "password",
    id: "own-key",
    autocomplete: "off",
    "aria-label": "Your OpenRouter key",
    placeholder: "sk-or-v1-…",
  });
  const msg = el("p", { role: "status", id: "own-key-msg" });
  const remove = button("Remove key", () => void act(() => removeOwnKey(), "Key removed."), { id: "own-key-remove" });
  const form = el("form", { class: "row", "aria-label": "Your own OpenRouter key" }, input, el("button", { type: "submit" }, "Save key"), remove);

  const show = (q: QuotaStatus): void => {
    const cap = q.daily_cap === null ? "no daily limit" : `of ${usd(q.daily_cap)} per day`;
    spend.textContent = `Spent today on this server's key: ${usd(q.spent_today)} ${cap}.` +
      (q.key.set ? ` On your own key: ${usd(q.byok_spent_today)}.` : "");
    keyState.textContent = q.key.set
      ? `Your own key ending in …${q.key.last4 ?? ""} pays for your turns (no daily limit applies).`
      : "No key of your own: turns use this server's key and its daily limit.";
    remove.hidden = !q.key.set;
  };
  const refresh = (): Promise<void> => getQuota().then(show).catch((x) => {
    spend.textContent = `Could not read your usage: ${x instanceof Error ? x.message : String(x)}`;
  });
  async function act(f: () => Promise<unknown>, done: string): Promise<void> {
    msg.textContent = "";
    try {
      await f();
      msg.textContent = done;
      input.value = "";
      await refresh();
    } catch (x) {
      msg.textContent = x instanceof Error ? x.message : String(x);
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) void act(() => saveOwnKey(input.value.trim()), "Key saved.");
  });
  void refresh();
  return el("section", { class: "card", "aria-labelledby": "usage-h", id: "usage" }, el("h2", { id: "usage-h" }, "Usage and your own key"), spend, keyState, form, msg);
}

/** Opens the Settings dialog (or focuses the open one). */
export function openSettings(): void {
  const open = document.getElementById("settings");
  if (open) {
    open.focus();
    return;
  }
  const d = el("dialog", { class: "dialog settings-dialog", id: "settings", "aria-labelledby": "settings-h", "data-testid": "settings" });
  const close = button("Close", () => d.close(), { id: "settings-close" });
  d.append(el("h2", { id: "settings-h" }, "Settings"), vaultPanel(), el("div", { class: "row end" }, close));
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
}

/** The top bar's Settings button. */
export function settingsButton(): HTMLButtonElement {
  return button("Settings", () => openSettings(), { class: "btn", id: "open-settings", "data-testid": "settings-button" });
}

/** A link that opens Settings, for messages that say a credential is missing. */
export function settingsLink(text = "Settings → Deploy credentials"): HTMLAnchorElement {
  const a = el("a", { href: "#settings", "data-testid": "open-settings-link" }, text);
  a.addEventListener("click", (e) => {
    e.preventDefault();
    openSettings();
  });
  return a;
}
