// The project WebSocket: reconnects with backoff and resumes with `since` = the last seq seen,
// so every logged event reaches the page exactly once even across drops and reloads.

import { socketUrl, type CheckpointInfo, type Deployment, type DeployStep, type Diff, type ExternalDeploy } from "./api";

export type TurnEnd = "done" | "stopped" | "step_cap" | "stuck" | "length" | "content_filter" | "error";

export type ServerEvent = { seq: number } & (
  | { type: "hello"; project_id: string; last_seq: number }
  | { type: "reset"; oldest_seq: number; last_seq: number }
  | { type: "pong"; nonce: number }
  | { type: "error"; message: string }
  | { type: "turn_started"; turn_id: number; text: string; model: string }
  | { type: "queued"; text: string; position: number }
  | { type: "assistant_delta"; turn_id: number; text: string }
  | { type: "tool_call_started"; turn_id: number; call_id: string; name: string; arguments: unknown }
  | { type: "tool_output"; turn_id: number; call_id: string; stream: "stdout" | "stderr"; data: string }
  | { type: "tool_call_finished"; turn_id: number; call_id: string; ok: boolean; result: string; duration_ms: number }
  | { type: "file_changed"; turn_id: number; path: string; sha256: string | null }
  | { type: "status"; turn_id: number; message: string }
  | { type: "preview_reload"; turn_id: number }
  | {
      type: "turn_finished";
      turn_id: number;
      end: TurnEnd;
      message: string | null;
      usage: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number; cost?: number | null };
      checkpoint: number | null;
    }
  | { type: "checkpoint_created"; checkpoint: CheckpointInfo; diff: Diff }
  | { type: "conversation_reset"; after_turn: number }
  /** The owner deleted the project; the server closes the socket (4404) right after. */
  | { type: "project_deleted" }
  | { type: "compacted"; turn_id: number; tokens_before: number; tokens_after: number }
  | {
      type: "workspace_notice";
      checkpoint: number | null;
      conflicts: { path: string; saved_as: string | null; reason: string }[];
      skipped: { path: string; reason: string; message?: string }[];
      error: string | null;
      displaced?: string[];
      displaced_more?: number;
    }
  | { type: "deploy_updated"; deployment: Deployment }
  | { type: "deploy_progress"; deployment: string; step: DeployStep; message: string }
  /** A publish's (`d-N`) or an external deploy's (`x-N`) output as it streams. */
  | { type: "deploy_log"; deployment: string; stream: "stdout" | "stderr"; data: string }
  /** The whole external deploy record, each time it changes. */
  | { type: "external_deploy"; deploy: ExternalDeploy }
);

export type ConnState =
  | { kind: "connecting"; attempt: number }
  | { kind: "open" }
  | { kind: "waiting"; retryInMs: number; attempt: number };

export interface SocketHandlers {
  /** Every logged event (seq > 0) once, in order; transient ones too (seq 0). */
  onEvent(e: ServerEvent): void;
  onState(s: ConnState): void;
}

const PING_MS = 20_000;

export class ProjectSocket {
  private ws: WebSocket | null = null;
  /** The highest seq applied; 0 before the first connection, which so asks for the whole log. */
  lastSeq = 0;
  private attempt = 0;
  private timer: number | undefined;
  private pinger: number | undefined;
  private closed = false;
  private pongSeen = true;
  private queue: string[] = [];

  constructor(
    private projectId: string,
    private h: SocketHandlers,
  ) {}

  start(): void {
    this.connect();
    window.addEventListener("online", this.retryNow);
  }

  close(): void {
    this.closed = true;
    window.removeEventListener("online", this.retryNow);
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.close(1000, "page left");
  }

  /** Sends a client message now, or as soon as the socket is open again. */
  send(msg: object): void {
    const s = JSON.stringify(msg);
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(s);
    else this.queue.push(s);
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Drops the connection as if the network failed (used by tests and the "reconnect" button). */
  drop(): void {
    this.ws?.close(4000, "client drop");
  }

  /** Reconnects at once instead of waiting for the backoff (the connection pill, `online`). */
  retryNow = (): void => {
    if (this.ws === null && !this.closed) {
      clearTimeout(this.timer);
      this.connect();
    }
  };

  private connect(): void {
    this.attempt++;
    this.h.onState({ kind: "connecting", attempt: this.attempt });
    // since=0 on the first connection replays the whole log: that is how history is loaded.
    const ws = new WebSocket(socketUrl(this.projectId, this.lastSeq));
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.pongSeen = true;
      this.h.onState({ kind: "open" });
      for (const s of this.queue.splice(0)) ws.send(s);
      clearInterval(this.pinger);
      this.pinger = window.setInterval(() => {
        if (!this.pongSeen) {
          ws.close(4001, "no pong");
          return;
        }
        this.pongSeen = false;
        ws.send(JSON.stringify({ type: "ping", nonce: Date.now() }));
      }, PING_MS);
    };
    ws.onmessage = (m) => {
      let e: ServerEvent;
      try {
        e = JSON.parse(String(m.data)) as ServerEvent;
      } catch {
        return;
      }
      if (e.type === "pong") {
        this.pongSeen = true;
        return;
      }
      if (e.seq > 0) {
        // Replay after `since` and live events can never overlap, but a stale socket might
        // still deliver: the seq check makes duplicates impossible either way.
        if (e.seq <= this.lastSeq) return;
        this.lastSeq = e.seq;
      }
      // After `reset` the server still sends what it kept (seq > since), so lastSeq stays put.
      this.h.onEvent(e);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      if (this.closed) return;
      // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at 15 s.
      const base = Math.min(15_000, 500 * 2 ** Math.min(this.attempt, 5));
      const wait = Math.round(base * (0.75 + Math.random() * 0.5));
      this.h.onState({ kind: "waiting", retryInMs: wait, attempt: this.attempt });
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }
}
