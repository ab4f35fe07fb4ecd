// The terminal panel: xterm.js on an interactive shell in the project's sandbox
// (`/projects/{id}/pty`: keystrokes and output as binary frames, resize as JSON, scrollback
// replayed after a reload). Where the server has no shell sessions, it falls back to a line
// editor that runs each command through `POST /projects/{id}/terminal` (Ctrl-C aborts the
// request, Up/Down walk the history) and shows the agent's commands too.

import { ptyUrl, runCommand } from "./api";
import { el, formatMs } from "./dom";
import type { Terminal } from "@xterm/xterm";

const PROMPT = "\x1b[1;34m$\x1b[0m ";
const HISTORY_KEY = "term-history";

export class TerminalPanel {
  readonly root: HTMLElement;
  private host: HTMLElement;
  private term: Terminal | null = null;
  private loading: Promise<void> | null = null;
  private line = "";
  private cursor = 0;
  private history: string[];
  private hIndex = -1;
  private running: AbortController | null = null;
  /** Agent output that arrived before xterm was loaded. */
  private backlog: string[] = [];
  private agentCall: string | null = null;
  /** The shell session's socket; null in line mode. */
  private pty: WebSocket | null = null;
  /** The shell said `hello`: this server has interactive shells. */
  private ptyReady = false;
  private ptyExited = false;
  private reconnects = 0;

  constructor(private projectId: string) {
    this.host = el("div", { class: "term-host", "aria-label": "Terminal", id: "terminal" });
    this.root = el("div", { class: "terminal" }, this.host);
    try {
      this.history = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]") as string[];
    } catch {
      this.history = [];
    }
  }

  /** Loads xterm the first time the terminal is shown or written to, then joins the shell. */
  ensure(): Promise<void> {
    return (this.loading ??= import("./term").then(({ createTerminal }) => {
      const { term } = createTerminal(this.host);
      this.term = term;
      term.onData((d) => (this.pty && this.ptyReady ? this.sendKeys(d) : this.input(d)));
      term.onResize(({ cols, rows }) => {
        if (this.pty?.readyState === WebSocket.OPEN) this.pty.send(JSON.stringify({ type: "resize", cols, rows }));
      });
      this.openPty();
    }));
  }

  private sendKeys(d: string): void {
    if (this.ptyExited) {
      // Enter after the shell ended starts a new one.
      if (d.includes("\r")) {
        this.ptyExited = false;
        this.openPty();
      }
      return;
    }
    if (this.pty?.readyState === WebSocket.OPEN) this.pty.send(new TextEncoder().encode(d));
  }

  private openPty(): void {
    const term = this.term;
    if (!term) return;
    const ws = new WebSocket(ptyUrl(this.projectId, "main", term.cols, term.rows));
    ws.binaryType = "arraybuffer";
    this.pty = ws;
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(m.data));
        return;
      }
      let e: { type?: string; message?: string; exit_code?: number | null; replayed_bytes?: number };
      try {
        e = JSON.parse(String(m.data));
      } catch {
        return;
      }
      if (e.type === "hello") {
        if (!this.ptyReady) term.reset();
        this.ptyReady = true;
        this.reconnects = 0;
        term.options.convertEol = false;
      } else if (e.type === "exit") {
        this.ptyExited = true;
        term.write(`\r\n\x1b[90m[the shell ended (exit ${e.exit_code ?? "?"}); press Enter for a new one]\x1b[0m\r\n`);
      } else if (e.type === "error") {
        term.write(`\r\n\x1b[31m[terminal: ${e.message ?? "error"}]\x1b[0m\r\n`);
      }
    };
    ws.onclose = () => {
      if (this.pty !== ws) return;
      if (!this.ptyReady) {
        // No shell sessions here: run commands one at a time instead.
        this.pty = null;
        this.startLineMode();
        return;
      }
      if (this.ptyExited) return;
      // A dropped connection: rejoin the same session, whose scrollback is replayed.
      const wait = Math.min(10_000, 500 * 2 ** this.reconnects++);
      setTimeout(() => {
        if (this.pty === ws) {
          term.reset();
          this.openPty();
        }
      }, wait);
    };
  }

  private startLineMode(): void {
    const term = this.term;
    if (!term) return;
    term.options.convertEol = true;
    term.writeln("\x1b[90mCommands run in the project's sandbox. Ctrl-C stops one; Up/Down recall history.\x1b[0m");
    for (const s of this.backlog.splice(0)) term.write(s);
    term.write(`\r\x1b[2K${PROMPT}`);
  }

  focus(): void {
    void this.ensure().then(() => this.term?.focus());
  }

  private write(s: string): void {
    // A shell owns the screen: agent commands show in the chat instead. Until it is known
    // whether there is one, lines wait for the line editor.
    if (this.pty && this.ptyReady) return;
    if (this.term && !this.pty) this.term.write(s);
    else this.backlog.push(s);
  }

  private redraw(): void {
    // Clear the line, print prompt + text, then move the cursor back to its place.
    const back = this.line.length - this.cursor;
    this.write(`\r\x1b[2K${PROMPT}${this.line}${back > 0 ? `\x1b[${back}D` : ""}`);
  }

  private input(data: string): void {
    if (this.running) {
      if (data === "\x03") {
        this.write("^C\r\n");
        this.running.abort();
      }
      return;
    }
    if (data.startsWith("\x1b[")) {
      switch (data) {
        case "\x1b[A":
          if (this.history.length) {
            this.hIndex = this.hIndex < 0 ? this.history.length - 1 : Math.max(0, this.hIndex - 1);
            this.line = this.history[this.hIndex] ?? "";
            this.cursor = this.line.length;
            this.redraw();
          }
          return;
        case "\x1b[B":
          if (this.hIndex >= 0) {
            this.hIndex++;
            if (this.hIndex >= this.history.length) {
              this.hIndex = -1;
              this.line = "";
            } else this.line = this.history[this.hIndex] ?? "";
            this.cursor = this.line.length;
            this.redraw();
          }
          return;
        case "\x1b[C":
          if (this.cursor < this.line.length) {
            this.cursor++;
            this.write(data);
          }
          return;
        case "\x1b[D":
          if (this.cursor > 0) {
            this.cursor--;
            this.write(data);
          }
          return;
        default:
          return;
      }
    }
    for (const ch of data) {
      if (ch === "\r") {
        const cmd = this.line.trim();
        this.line = "";
        this.cursor = 0;
        this.hIndex = -1;
        this.write("\r\n");
        if (cmd) void this.run(cmd);
        else this.write(PROMPT);
      } else if (ch === "\x7f" || ch === "\b") {
        if (this.cursor > 0) {
          this.line = this.line.slice(0, this.cursor - 1) + this.line.slice(this.cursor);
          this.cursor--;
          this.redraw();
        }
      } else if (ch === "\x03") {
        this.write("^C\r\n");
        this.line = "";
        this.cursor = 0;
        this.write(PROMPT);
      } else if (ch === "\x0c") {
        this.term?.clear();
        this.redraw();
      } else if (ch >= " ") {
        this.line = this.line.slice(0, this.cursor) + ch + this.line.slice(this.cursor);
        this.cursor++;
        this.redraw();
      }
    }
  }

  /** Runs one command (also callable from tests and other panels). */
  async run(cmd: string): Promise<void> {
    await this.ensure();
    if (this.history[this.history.length - 1] !== cmd) this.history.push(cmd);
    this.history = this.history.slice(-200);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(this.history));
    const ac = new AbortController();
    this.running = ac;
    try {
      await runCommand(
        this.projectId,
        cmd,
        (l) => {
          if (l.type === "stdout") this.write(l.data);
          else if (l.type === "stderr") this.write(`\x1b[31m${l.data}\x1b[0m`);
          else if (l.type === "exit") {
            const flags = [l.timed_out ? "timed out" : "", l.truncated ? "output truncated" : ""].filter(Boolean).join(", ");
            const code = l.exit_code ?? "?";
            this.write(`\x1b[${l.exit_code === 0 ? 90 : 33}m[exit ${code} · ${formatMs(l.duration_ms)}${flags ? ` · ${flags}` : ""}]\x1b[0m\r\n`);
          }
        },
        ac.signal,
      );
    } catch (e) {
      if (ac.signal.aborted) this.write("\x1b[33m[stopped]\x1b[0m\r\n");
      else this.write(`\x1b[31m[could not run: ${e instanceof Error ? e.message : String(e)}]\x1b[0m\r\n`);
    } finally {
      this.running = null;
      this.write(PROMPT + this.line);
    }
  }

  /** The agent ran a command: show it with its output, like a second user of this terminal. */
  agentStarted(callId: string, command: string): void {
    this.agentCall = callId;
    this.write(`\r\x1b[2K\x1b[35m[agent]\x1b[0m $ ${command}\r\n`);
  }

  agentOutput(callId: string, stream: string, data: string): void {
    if (this.agentCall !== callId) return;
    this.write(stream === "stderr" ? `\x1b[31m${data}\x1b[0m` : data);
  }

  agentFinished(callId: string, ok: boolean, ms: number): void {
    if (this.agentCall !== callId) return;
    this.agentCall = null;
    this.write(`\x1b[90m[agent command ${ok ? "finished" : "failed"} · ${formatMs(ms)}]\x1b[0m\r\n`);
    if (!this.running && this.term) this.redraw();
  }
}
