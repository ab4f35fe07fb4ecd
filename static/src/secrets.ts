// App secrets: a project's environment variables for its dev servers and published backend
// (API keys the app itself needs). Editors only; the values never come back to the page and
// the agent never sees them.

import { listSecrets, removeSecret, saveSecret, type SecretInfo } from "./api";
import { button, el } from "./dom";
import { secretState } from "./vault";

const NAME = /^[A-Z_][A-Z0-9_]*$/;
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class SecretsPanel {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private error: HTMLElement;
  private name: HTMLInputElement;
  private value: HTMLInputElement;
  private add: HTMLButtonElement;

  constructor(private projectId: string) {
    this.list = el("ul", { class: "secret-list", "aria-label": "App secrets" });
    this.error = el("p", { class: "bad", role: "alert", "data-testid": "secret-error", hidden: true });
    this.name = el("input", {
      type: "text",
      autocomplete: "off",
      spellcheck: "false",
      autocapitalize: "characters",
      placeholder: "STRIPE_KEY",
      pattern: "[A-Z_][A-Z0-9_]*",
      title: "Capital letters, digits and _ (not starting with a digit)",
      "data-testid": "secret-name",
    });
    this.value = el("input", { type: "password", autocomplete: "off", spellcheck: "false", placeholder: "value", "data-testid": "secret-value" });
    this.add = el("button", { type: "submit", class: "primary", "data-testid": "secret-add" }, "Add or replace");
    const form = el(
      "form",
      { class: "side-form", "aria-label": "Add an app secret" },
      el("label", {}, "Name", this.name),
      el("label", {}, "Value", this.value),
      el("div", { class: "row" }, this.add),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    this.root = el(
      "div",
      { class: "publish secrets editor-only", id: "secrets-panel", "data-testid": "secrets-panel" },
      el("h3", {}, "App secrets"),
      el(
        "p",
        { class: "muted" },
        "Environment variables for this app's dev servers and its published backend (API keys and the like). The agent never sees them; a change applies at the next preview restart or publish.",
      ),
      this.list,
      form,
      this.error,
    );
  }

  async refresh(): Promise<void> {
    try {
      this.show((await listSecrets(this.projectId)).secrets);
    } catch (e) {
      this.showError(`Cannot list the app's secrets: ${message(e)}`);
    }
  }

  private show(secrets: SecretInfo[]): void {
    if (!secrets.length) {
      this.list.replaceChildren(el("li", { class: "muted" }, "No secrets yet."));
      return;
    }
    this.list.replaceChildren(
      ...[...secrets]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((s) =>
          el(
            "li",
            { "data-testid": "secret-row", "data-name": s.name },
            el("div", { class: "cp-head" }, el("code", {}, s.name), el("span", { class: "muted grow" }, secretState(s))),
            el(
              "div",
              { class: "row" },
              button("Remove", () => void this.remove(s.name), { class: "danger", "data-testid": "secret-remove", "aria-label": `Remove ${s.name}` }),
            ),
          ),
        ),
    );
  }

  private async save(): Promise<void> {
    const name = this.name.value.trim();
    const value = this.value.value;
    if (!NAME.test(name)) {
      this.showError("A name is capital letters, digits and _, and does not start with a digit (like STRIPE_KEY).");
      return;
    }
    if (!value) {
      this.showError(`Enter a value for ${name}.`);
      return;
    }
    this.add.disabled = true;
    try {
      this.show((await saveSecret(this.projectId, name, value)).secrets);
      this.name.value = "";
      this.value.value = "";
      this.showError(null);
    } catch (e) {
      // A refused name (PATH, PORT, …) keeps what was typed so it can be corrected.
      this.showError(`Cannot save ${name}: ${message(e)}`);
    } finally {
      this.add.disabled = false;
    }
  }

  private async remove(name: string): Promise<void> {
    try {
      this.show((await removeSecret(this.projectId, name)).secrets);
      this.showError(null);
    } catch (e) {
      this.showError(`Cannot remove ${name}: ${message(e)}`);
    }
  }

  private showError(msg: string | null): void {
    this.error.hidden = msg === null;
    this.error.textContent = msg ?? "";
  }
}
