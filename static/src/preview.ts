// The preview panel: the running app in an iframe on the preview origin, with a URL bar, reload,
// open-in-new-tab, device widths, and a clear empty state with a start button.

import { getPreview, HttpError, startPreview, type PreviewState } from "./api";
import { button, el } from "./dom";

const WIDTHS: Record<string, string> = { phone: "375px", tablet: "768px", desktop: "100%" };

export class PreviewPanel {
  readonly root: HTMLElement;
  private frame: HTMLIFrameElement;
  private urlInput: HTMLInputElement;
  private stage: HTMLElement;
  private empty: HTMLElement;
  private emptyMsg: HTMLElement;
  private startBtn: HTMLButtonElement;
  private url: string | null = null;

  constructor(private projectId: string) {
    this.frame = el("iframe", {
      id: "preview-frame",
      title: "App preview",
      sandbox: "allow-scripts allow-forms allow-same-origin allow-popups allow-modals",
    });
    this.urlInput = el("input", { type: "text", id: "preview-url", "aria-label": "Preview URL", spellcheck: "false" });
    this.urlInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") this.navigate(this.urlInput.value);
    });
    const device = el(
      "select",
      { "aria-label": "Preview width", id: "preview-width" },
      el("option", { value: "desktop" }, "Desktop"),
      el("option", { value: "tablet" }, "Tablet (768)"),
      el("option", { value: "phone" }, "Phone (375)"),
    );
    device.addEventListener("change", () => {
      this.frame.style.width = WIDTHS[device.value] ?? "100%";
      this.stage.classList.toggle("framed", device.value !== "desktop");
    });
    this.emptyMsg = el("p", {}, "No dev server is running for this project yet.");
    this.startBtn = button("Start the app", () => void this.start(false), { class: "primary", id: "preview-start" });
    this.empty = el("div", { class: "preview-empty", id: "preview-empty" }, this.emptyMsg, this.startBtn);
    this.stage = el("div", { class: "preview-stage" }, this.empty);
    this.root = el(
      "div",
      { class: "preview" },
      el(
        "div",
        { class: "panel-head preview-bar" },
        button("⟳", () => this.reload(), { "aria-label": "Reload preview", title: "Reload" }),
        this.urlInput,
        button("↗", () => this.url && window.open(this.urlInput.value || this.url, "_blank", "noopener"), { "aria-label": "Open preview in a new tab", title: "Open in new tab" }),
        device,
        button("Restart", () => void this.start(true), { "aria-label": "Restart the dev server" }),
      ),
      this.stage,
    );
  }

  /** Shows what runs now; `force` reloads the page even when its URL did not change. */
  async refresh(force = false): Promise<void> {
    try {
      this.show(await getPreview(this.projectId), force);
    } catch (e) {
      const missing = e instanceof HttpError && e.status === 404;
      this.showEmpty(missing ? "This server has no preview endpoint yet." : `Preview is not available: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async start(restart: boolean): Promise<void> {
    this.startBtn.disabled = true;
    this.emptyMsg.textContent = restart ? "Restarting the dev server…" : "Starting the dev server…";
    try {
      this.show(await startPreview(this.projectId, restart));
    } catch (e) {
      this.showEmpty(`Could not start: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.startBtn.disabled = false;
    }
  }

  private show(p: PreviewState, force = false): void {
    if (p.running && p.url) {
      const changed = p.url !== this.url;
      this.url = p.url;
      if (changed) this.navigate(p.url);
      else if (force) this.reload();
      this.empty.remove();
      if (!this.frame.isConnected) this.stage.append(this.frame);
    } else {
      this.showEmpty("No dev server is running for this project yet.");
    }
  }

  private showEmpty(msg: string): void {
    this.emptyMsg.textContent = msg;
    this.frame.remove();
    this.url = null;
    this.urlInput.value = "";
    if (!this.empty.isConnected) this.stage.append(this.empty);
  }

  private navigate(u: string): void {
    this.urlInput.value = u;
    this.frame.src = u;
  }

  reload(): void {
    if (!this.url) {
      void this.refresh();
      return;
    }
    // Re-assigning src reloads even cross-origin, where contentWindow.location is off limits.
    const src = this.frame.src;
    this.frame.src = "about:blank";
    setTimeout(() => (this.frame.src = src), 30);
  }

  focus(): void {
    this.urlInput.focus();
  }
}
