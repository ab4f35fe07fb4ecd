//! Running one OS process for the service: spawning it as its own process group, killing
//! that group, pumping its pipes, decoding its output as UTF-8 without splitting characters,
//! and driving a command to its end as exec events (`exec` and `deps` stream them, `procs`
//! keeps the lines of its dev servers).

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::Response;
use open_replit_core::vm_api::{ndjson_line, ExecEvent, ExecExit, LogStream};
use serde::Serialize;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// After the command exits, how long to wait for its pipes to reach EOF before giving up
/// (an unsandboxed daemon may keep them open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Spawns `cmd` as the leader of a new process group, so the group can be killed as a whole;
/// `kill_on_drop` is the last line of defence if the owning task is dropped.
pub fn spawn_in_group(mut cmd: Command) -> std::io::Result<Child> {
    cmd.process_group(0)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
}

/// SIGKILLs the process group led by `pid`. With bwrap the leader is bwrap itself; its death
/// takes the sandbox's PID namespace (every grandchild) with it via `--die-with-parent`.
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Decodes a byte stream into UTF-8 text without splitting a multi-byte character.
#[derive(Default)]
pub struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.0.extend_from_slice(bytes);
        match std::str::from_utf8(&self.0) {
            Ok(s) => {
                let s = s.to_string();
                self.0.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.0[..valid]).into_owned();
                self.0.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.0).into_owned();
                self.0.clear();
                s
            }
        }
    }
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.0).into_owned();
        self.0.clear();
        s
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }

    /// `data` as this stream's exec event.
    pub fn event(self, data: String) -> ExecEvent {
        match self {
            StreamKind::Stdout => ExecEvent::Stdout { data },
            StreamKind::Stderr => ExecEvent::Stderr { data },
        }
    }

    /// The stream's name in a managed process's log.
    pub fn log_stream(self) -> LogStream {
        match self {
            StreamKind::Stdout => LogStream::Stdout,
            StreamKind::Stderr => LogStream::Stderr,
        }
    }
}

/// Forwards raw chunks of one pipe into `tx` until EOF.
pub fn pump<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    kind: StreamKind,
    tx: mpsc::Sender<(StreamKind, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((kind, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// One wire value as an NDJSON line.
pub fn ndjson<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(ndjson_line(v))
}

/// An NDJSON reply streaming whatever arrives on `rx` (exec output, followed logs).
pub fn ndjson_response(rx: mpsc::Receiver<Bytes>) -> Result<Response, ApiError> {
    let stream = futures_util::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<Bytes, std::convert::Infallible>,
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal("response", e.to_string()))
}

/// How a command ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    pub client_gone: bool,
}

/// The final NDJSON event of an exec.
pub fn exit_event(o: &Outcome, started: Instant) -> Bytes {
    ndjson(&ExecEvent::Exit(ExecExit {
        exit_code: o.exit_code,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: o.timed_out,
        truncated: o.truncated,
    }))
}

/// One line of text as a stream event (used for the service's own notes in the output).
pub fn text_event(kind: StreamKind, text: &str) -> Bytes {
    ndjson(&kind.event(text.to_string()))
}

/// Drives one command to its end, streaming its output into `tx`; returns when the command
/// and its pipes are done. A closed `tx` (client gone) or the shutdown signal kills the group.
/// With `heartbeat`, a quiet command (a cold `npm install` prints nothing for half a minute)
/// gets a "still running" line after each such silence, so watchers know it is alive.
pub async fn drive(
    mut child: Child,
    timeout: Duration,
    cap: usize,
    tx: &mpsc::Sender<Bytes>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    heartbeat: Option<Duration>,
) -> Outcome {
    let begun = Instant::now();
    let beat_every = heartbeat.unwrap_or(Duration::from_secs(u64::MAX / 4));
    let beat = tokio::time::sleep(beat_every);
    tokio::pin!(beat);
    let pid = child.id();
    let (ctx, mut crx) = mpsc::channel::<(StreamKind, Vec<u8>)>(32);
    let mut pumps = Vec::new();
    if let Some(o) = child.stdout.take() {
        pumps.push(pump(o, StreamKind::Stdout, ctx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        pumps.push(pump(e, StreamKind::Stderr, ctx.clone()));
    }
    drop(ctx);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let drain = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(drain);
    let (mut out_carry, mut err_carry) = (Utf8Carry::default(), Utf8Carry::default());
    let mut sent = 0usize;
    let mut truncated = false;
    let mut timed_out = false;
    let mut client_gone = false;
    let mut status: Option<std::process::ExitStatus> = None;
    let mut pipes_open = true;
    while status.is_none() || pipes_open {
        tokio::select! {
            _ = tx.closed(), if !client_gone => {
                client_gone = true;
                tracing::info!("exec client disconnected; killing the command");
                kill_group(pid);
            }
            _ = shutdown.changed(), if status.is_none() => {
                kill_group(pid);
            }
            _ = &mut deadline, if !timed_out && status.is_none() => {
                timed_out = true;
                kill_group(pid);
            }
            _ = &mut beat, if heartbeat.is_some() && status.is_none() && !client_gone => {
                let secs = begun.elapsed().as_secs();
                let _ = tx.send(text_event(StreamKind::Stdout, &format!("[vm-api] still running ({secs} s)\n"))).await;
                beat.as_mut().reset(tokio::time::Instant::now() + beat_every);
            }
            msg = crx.recv(), if pipes_open => match msg {
                None => pipes_open = false,
                Some((kind, bytes)) => {
                    beat.as_mut().reset(tokio::time::Instant::now() + beat_every);
                    if truncated || client_gone {
                        continue; // keep draining so the command never blocks on a full pipe
                    }
                    let room = cap.saturating_sub(sent);
                    let take = bytes.len().min(room);
                    sent += take;
                    if take < bytes.len() {
                        truncated = true;
                    }
                    let carry = if kind == StreamKind::Stdout { &mut out_carry } else { &mut err_carry };
                    let text = carry.push(&bytes[..take]);
                    if !text.is_empty() {
                        let _ = tx.send(ndjson(&kind.event(text))).await;
                    }
                }
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(-1)));
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            _ = &mut drain, if status.is_some() && pipes_open => {
                // Something outside our reach holds the pipes; stop reading them.
                kill_group(pid);
                for p in &pumps { p.abort(); }
                pipes_open = false;
            }
        }
    }
    for (kind, carry) in [
        (StreamKind::Stdout, &mut out_carry),
        (StreamKind::Stderr, &mut err_carry),
    ] {
        let rest = carry.finish();
        if !rest.is_empty() {
            let _ = tx.send(ndjson(&kind.event(rest))).await;
        }
    }
    Outcome {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        truncated,
        client_gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_carry_never_splits_a_character() {
        let mut c = Utf8Carry::default();
        let bytes = "é€".as_bytes();
        assert_eq!(c.push(&bytes[..1]), "");
        assert_eq!(c.push(&bytes[1..3]), "é");
        assert_eq!(c.push(&bytes[3..]), "€");
        assert_eq!(c.push(b"\xffok"), "\u{fffd}ok");
        assert_eq!(c.push(&bytes[..1]), "");
        assert_eq!(c.finish(), "\u{fffd}");
    }
}
