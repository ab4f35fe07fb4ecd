// Small DOM helpers: element construction without innerHTML, and formatting.

type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

export function button(label: string, onClick: (ev: MouseEvent) => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

export function timeAgo(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

/** A modal confirmation built on <dialog>; resolves true when the person confirms. */
export function confirmDialog(title: string, text: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const d = el("dialog", { class: "dialog", "aria-label": title });
    const done = (v: boolean): void => {
      d.close();
      d.remove();
      resolve(v);
    };
    d.append(
      el("h2", {}, title),
      el("p", {}, text),
      el("div", { class: "row end" }, button("Cancel", () => done(false)), button(confirmLabel, () => done(true), { class: "primary", "data-confirm": true })),
    );
    d.addEventListener("cancel", () => done(false));
    document.body.append(d);
    d.showModal();
  });
}

/** Asks for one line of text; resolves null when cancelled. */
export function promptDialog(title: string, label: string, initial: string): Promise<string | null> {
  return new Promise((resolve) => {
    const input = el("input", { type: "text", "aria-label": label, value: initial, class: "wide" });
    const form = el("form", { method: "dialog" });
    const d = el("dialog", { class: "dialog", "aria-label": title });
    const done = (v: string | null): void => {
      d.close();
      d.remove();
      resolve(v);
    };
    form.append(
      el("h2", {}, title),
      el("label", {}, label, input),
      el("div", { class: "row end" }, button("Cancel", () => done(null)), el("button", { type: "submit", class: "primary" }, "OK")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      done(input.value.trim() || null);
    });
    d.addEventListener("cancel", () => done(null));
    d.append(form);
    document.body.append(d);
    d.showModal();
    input.select();
  });
}
