// The chat panel: the conversation rendered from the project's event log (live and replayed),
// tool calls as collapsible steps, per-turn usage, the composer with stop and model picker.

import { listModels } from "./api";
import { button, el, formatMs } from "./dom";
import { renderMarkdown } from "./markdown";
import type { ServerEvent } from "./socket";

interface TextPart {
  el: HTMLElement;
  src: string;
}

interface ToolView {
  root: HTMLDetailsElement;
  status: HTMLElement;
  duration: HTMLElement;
  output: HTMLPreElement;
  result: HTMLPreElement;
  started: number;
}

interface TurnView {
  root: HTMLElement;
  body: HTMLElement;
  text: TextPart | null;
  tools: Map<string, ToolView>;
  footer: HTMLElement;
  finished: boolean;
}

/** A short, human label for a tool call's arguments. */
export function argSummary(name: string, args: unknown): string {
  const a = (typeof args === "string" ? safeParse(args) : args) as Record<string, unknown> | null;
  if (!a || typeof a !== "object") return "";
  for (const k of ["command", "path", "name", "query"]) {
    if (typeof a[k] === "string") return String(a[k]);
  }
  return name === "list_files" ? "/" : "";
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

export interface ChatOptions {
  send(text: string, model: string): void;
  stop(): void;
  /** Starts a new conversation: the agent forgets the chat, the files stay. */
  newChat(): void;
}

export class ChatPanel {
  readonly root: HTMLElement;
  private log: HTMLElement;
  private input: HTMLTextAreaElement;
  private sendBtn: HTMLButtonElement;
  private stopBtn: HTMLButtonElement;
  private newChatBtn: HTMLButtonElement;
  private queuedEl: HTMLElement;
  private model: HTMLSelectElement;
  private turns = new Map<number, TurnView>();
  private dirty = new Set<TextPart>();
  private frame = 0;
  private queued: string[] = [];
  private pending = 0;
  runningTurn: number | null = null;
  private empty: HTMLElement;

  constructor(private opts: ChatOptions) {
    this.model = el("select", { id: "model-picker", "aria-label": "Model" });
    this.log = el("div", { class: "chat-log", role: "log", "aria-label": "Conversation", "aria-live": "polite", tabindex: "0" });
    this.empty = el("p", { class: "muted empty-chat" }, "Describe what to build or change. The agent writes the files, runs commands and starts the preview.");
    this.log.append(this.empty);
    this.input = el("textarea", {
      id: "chat-input",
      rows: "3",
      "aria-label": "Message to the agent",
      placeholder: "Ask the agent… (Enter sends, Shift+Enter for a new line)",
    });
    this.sendBtn = button("Send", () => this.submit(), { class: "primary", id: "send" });
    this.stopBtn = button("Stop", () => this.opts.stop(), { id: "stop", class: "danger", disabled: true, "aria-label": "Stop the running turn" });
    this.newChatBtn = button("New chat", () => this.opts.newChat(), {
      id: "new-chat",
      title: "Start a new conversation: the agent forgets this chat, the files stay",
      "aria-label": "New chat (the files stay)",
    });
    this.queuedEl = el("div", { class: "queued", id: "queued", role: "status", hidden: true });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.root = el(
      "div",
      { class: "chat" },
      el("div", { class: "panel-head" }, el("h2", {}, "Chat"), this.newChatBtn, el("label", { class: "inline" }, "Model ", this.model)),
      this.log,
      this.queuedEl,
      el("div", { class: "composer" }, this.input, el("div", { class: "composer-actions" }, this.stopBtn, this.sendBtn)),
    );
    void this.loadModels();
  }

  private async loadModels(): Promise<void> {
    try {
      const m = await listModels();
      const saved = localStorage.getItem("model");
      // The configured default is always offered, even when the provider's list lacks it.
      const models = m.models.some((x) => x.id === m.default) ? m.models : [{ id: m.default, name: m.default }, ...m.models];
      const ids = models.map((x) => x.id);
      this.model.replaceChildren(...models.map((x) => el("option", { value: x.id }, x.name || x.id)));
      this.model.value = saved && ids.includes(saved) ? saved : m.default;
      this.model.addEventListener("change", () => localStorage.setItem("model", this.model.value));
    } catch {
      this.model.replaceChildren(el("option", { value: "" }, "default model"));
    }
  }

  focusInput(): void {
    this.input.focus();
  }

  private submit(): void {
    const text = this.input.value.trim();
    if (!text) return;
    this.opts.send(text, this.model.value);
    this.input.value = "";
    this.pending++;
    this.renderQueued();
  }

  private renderQueued(): void {
    const parts: string[] = [];
    if (this.pending > 0) parts.push("Sending…");
    if (this.queued.length) parts.push(`${this.queued.length} queued: ${this.queued.map((q) => `“${q.slice(0, 40)}”`).join(", ")}`);
    this.queuedEl.hidden = parts.length === 0;
    this.queuedEl.textContent = parts.join(" · ");
  }

  private setRunning(turn: number | null): void {
    this.runningTurn = turn;
    this.stopBtn.disabled = turn === null;
    this.newChatBtn.disabled = turn !== null;
    this.root.classList.toggle("running", turn !== null);
  }

  private nearBottom(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
  }

  private turn(id: number, text?: string, model?: string): TurnView {
    let t = this.turns.get(id);
    if (t) return t;
    this.empty.remove();
    const body = el("div", { class: "assistant" });
    const footer = el("div", { class: "turn-footer muted" });
    const root = el(
      "article",
      { class: "turn", "data-turn": String(id) },
      text !== undefined ? el("div", { class: "user-msg" }, el("span", { class: "sr-only" }, "You: "), text) : null,
      body,
      footer,
    );
    if (model) footer.textContent = model;
    this.log.append(root);
    t = { root, body, text: null, tools: new Map(), footer, finished: false };
    this.turns.set(id, t);
    return t;
  }

  private schedule(): void {
    if (this.frame) return;
    const stick = this.nearBottom();
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const p of this.dirty) p.el.innerHTML = renderMarkdown(p.src);
      this.dirty.clear();
      if (stick) this.log.scrollTop = this.log.scrollHeight;
    });
  }

  private note(t: TurnView | null, text: string, cls = "status-line"): void {
    const stick = this.nearBottom();
    const n = el("div", { class: cls }, text);
    (t ? t.body : this.log).append(n);
    if (t) t.text = null;
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }

  handle(e: ServerEvent): void {
    switch (e.type) {
      case "turn_started": {
        this.pending = Math.max(0, this.pending - 1);
        const qi = this.queued.indexOf(e.text);
        if (qi >= 0) this.queued.splice(qi, 1);
        else if (this.queued.length) this.queued.shift();
        this.renderQueued();
        this.turn(e.turn_id, e.text, e.model);
        this.setRunning(e.turn_id);
        break;
      }
      case "queued":
        this.pending = Math.max(0, this.pending - 1);
        this.queued.push(e.text);
        this.renderQueued();
        break;
      case "assistant_delta": {
        const t = this.turn(e.turn_id);
        if (!t.text) {
          const p = el("div", { class: "md" });
          t.body.append(p);
          t.text = { el: p, src: "" };
        }
        t.text.src += e.text;
        this.dirty.add(t.text);
        this.schedule();
        break;
      }
      case "tool_call_started": {
        const t = this.turn(e.turn_id);
        t.text = null;
        const status = el("span", { class: "tool-status", "aria-label": "running" }, "●");
        const duration = el("span", { class: "tool-duration muted" });
        const output = el("pre", { class: "tool-output", hidden: true });
        const result = el("pre", { class: "tool-result", hidden: true });
        const args = typeof e.arguments === "string" ? safeParse(e.arguments) : e.arguments;
        const root = el(
          "details",
          { class: "tool running", "data-call": e.call_id, "data-tool": e.name },
          el("summary", {}, status, el("code", { class: "tool-name" }, e.name), el("span", { class: "tool-arg" }, argSummary(e.name, args)), duration),
          el("div", { class: "tool-body" }, el("div", { class: "muted" }, "Arguments"), el("pre", { class: "tool-args" }, JSON.stringify(args, null, 2)), output, result),
        );
        const stick = this.nearBottom();
        t.body.append(root);
        if (stick) this.log.scrollTop = this.log.scrollHeight;
        t.tools.set(e.call_id, { root, status, duration, output, result, started: Date.now() });
        break;
      }
      case "tool_output": {
        const v = this.turns.get(e.turn_id)?.tools.get(e.call_id);
        if (!v) break;
        v.output.hidden = false;
        const span = el("span", { class: e.stream === "stderr" ? "stderr" : "" }, e.data);
        v.output.append(span);
        v.output.scrollTop = v.output.scrollHeight;
        // A running command shows its output without having to open the step.
        if (v.root.classList.contains("running")) v.root.open = true;
        break;
      }
      case "tool_call_finished": {
        const v = this.turns.get(e.turn_id)?.tools.get(e.call_id);
        if (!v) break;
        v.root.classList.remove("running");
        v.root.classList.add(e.ok ? "ok" : "failed");
        v.status.textContent = e.ok ? "✓" : "✗";
        v.status.setAttribute("aria-label", e.ok ? "succeeded" : "failed");
        v.duration.textContent = formatMs(e.duration_ms);
        v.result.hidden = false;
        v.result.textContent = e.result;
        v.root.open = !e.ok;
        break;
      }
      case "status": {
        const t = this.turn(e.turn_id);
        this.note(t, e.message);
        break;
      }
      case "turn_finished": {
        const t = this.turn(e.turn_id);
        t.finished = true;
        for (const v of t.tools.values()) {
          if (v.root.classList.contains("running")) {
            v.root.classList.replace("running", "failed");
            v.status.textContent = "■";
          }
        }
        const u = e.usage;
        const cost = typeof u.cost === "number" ? ` · $${u.cost.toFixed(u.cost < 0.01 ? 5 : 3)}` : "";
        const parts = [
          `${u.prompt_tokens.toLocaleString()} in${u.cached_tokens ? ` (${u.cached_tokens.toLocaleString()} cached)` : ""} / ${u.completion_tokens.toLocaleString()} out tokens${cost}`,
        ];
        if (e.checkpoint) parts.push(`checkpoint #${e.checkpoint}`);
        t.footer.textContent = `${t.footer.textContent ? `${t.footer.textContent} · ` : ""}${parts.join(" · ")}`;
        t.footer.classList.add("usage");
        if (e.end !== "done") {
          const labels: Record<string, string> = {
            stopped: "Stopped.",
            step_cap: "Stopped: the step limit was reached.",
            stuck: "Stopped: the agent was repeating itself.",
            length: "Stopped: the answer hit the length limit.",
            content_filter: "Stopped by the provider's content filter.",
            error: "The turn failed.",
          };
          this.note(t, `${labels[e.end] ?? e.end}${e.message ? ` ${e.message}` : ""}`, `end-line end-${e.end}`);
        } else if (e.message) {
          this.note(t, e.message);
        }
        if (this.runningTurn === e.turn_id) this.setRunning(null);
        break;
      }
      case "workspace_notice": {
        // A command's changes outside a turn: what could not simply be saved.
        const lines = [
          ...e.conflicts.map((c) => `${c.path}: ${c.reason}${c.saved_as ? ` (saved as ${c.saved_as})` : ""}`),
          ...e.skipped.map((f) => `${f.path}: not saved (${f.message || f.reason})`),
          ...(e.error ? [`The command's changes could not be saved yet: ${e.error}`] : []),
          ...(e.displaced ?? []).map((p) => `${p}: removed from the VM's copy (never saved; storage has something else there)`),
          ...(e.displaced_more ? [`…and ${e.displaced_more} more removed`] : []),
        ];
        if (lines.length) this.note(null, lines.join("\n"), "error-line workspace-notice");
        break;
      }
      case "error":
        this.pending = Math.max(0, this.pending - 1);
        this.renderQueued();
        this.note(null, `Server: ${e.message}`, "error-line");
        break;
      case "conversation_reset":
        this.note(null, "New chat: the agent starts fresh from here. The files stay.", "status-line new-chat-line");
        break;
      case "compacted":
        this.note(
          this.turn(e.turn_id),
          `Summarized the earlier conversation for the model (${e.tokens_before.toLocaleString()} → ${e.tokens_after.toLocaleString()} tokens); the transcript here stays whole.`,
        );
        break;
      case "reset":
        this.note(null, "Some older history is no longer kept; showing what remains.", "status-line");
        break;
      default:
        break;
    }
  }
}
