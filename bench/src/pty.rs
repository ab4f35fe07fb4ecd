//! The interactive terminal's keystroke echo: a key typed into the browser's socket, through
//! the Worker and the VM API to the shell on its PTY and back, against bash on a local PTY in
//! this process (no sandbox, no sockets), same run.

use crate::table::{percentile, Row, Table};
use anyhow::{Context, Result};
use e2e::stack::{Options, Stack};
use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Keystrokes per path; every 50th is followed by Ctrl-U so the line stays short.
const KEYS: usize = 200;

pub async fn rows(t: &mut Table) -> Result<()> {
    let stack = Stack::start(Options::default()).await?;
    let id = stack.create_project("pty bench", "backend").await?;
    let url = format!(
        "{}/projects/{id}/pty?session=bench&cols=100&rows=30",
        stack.worker_url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    let mut out: Vec<u8> = Vec::new();
    // Waits until `out[from..]` holds `want`.
    async fn until(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
        out: &mut Vec<u8>,
        from: usize,
        want: &[u8],
    ) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(10);
        while !out[from..].windows(want.len()).any(|w| w == want) {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => out.extend_from_slice(&b),
                Ok(Some(Ok(_))) => {}
                _ => anyhow::bail!("no {:?} from the terminal", String::from_utf8_lossy(want)),
            }
        }
        Ok(())
    }
    ws.send(Message::Binary(b"echo R$((40+2))\r".to_vec().into()))
        .await?;
    until(&mut ws, &mut out, 0, b"R42").await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut through = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let c = [b'a' + (i % 26) as u8];
        let from = out.len();
        let t0 = Instant::now();
        ws.send(Message::Binary(c.to_vec().into())).await?;
        until(&mut ws, &mut out, from, &c).await?;
        through.push(t0.elapsed());
        if i % 50 == 49 {
            ws.send(Message::Binary(b"\x15".to_vec().into())).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // A file the shell writes → part of the project (the inotify `changed` notice, the
    // Worker's debounced save, a `user` checkpoint), against the same write through the
    // one-shot POST /terminal (scanned when the command ends), same stack.
    ws.send(Message::Binary(b"\x15".to_vec().into())).await?;
    let mut shell_saves = Vec::new();
    let mut oneshot = Vec::new();
    for i in 0..SAVES {
        let t0 = Instant::now();
        let cmd = format!("echo v{i} > shell-{i}.txt\r");
        ws.send(Message::Binary(cmd.into_bytes().into())).await?;
        saved(&stack, &id, &format!("shell-{i}.txt")).await?;
        shell_saves.push(t0.elapsed());
        let t0 = Instant::now();
        let r = stack
            .http
            .post(format!("{}/projects/{id}/terminal", stack.worker_url))
            .json(&serde_json::json!({"command": format!("echo v{i} > oneshot-{i}.txt")}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "terminal: {}", r.status());
        r.text().await?;
        saved(&stack, &id, &format!("oneshot-{i}.txt")).await?;
        oneshot.push(t0.elapsed());
    }
    drop(ws);
    let (s50, o50) = (
        percentile(&mut shell_saves, 50),
        percentile(&mut oneshot, 50),
    );
    t.push(
        Row::new(
            "Interactive shell: file written → saved in the project (median)",
            format!("{:.0} ms", ms(s50)),
        )
        .baseline(format!("one-shot POST /terminal {:.0} ms", ms(o50)))
        .goal("≤ 2 s")
        .note(format!(
            "{SAVES} files each; inotify notice + {SAVE_DEBOUNCE_NOTE} debounce + checkpoint"
        )),
    );
    let mut local = tokio::task::spawn_blocking(local_echo).await??;
    let (w50, w99) = (percentile(&mut through, 50), percentile(&mut through, 99));
    let (l50, l99) = (percentile(&mut local, 50), percentile(&mut local, 99));
    t.push(
        Row::new(
            "Keystroke echo, browser socket → Worker → VM API → sandboxed PTY (p50 / p99)",
            format!("{:.2} ms / {:.2} ms", ms(w50), ms(w99)),
        )
        .baseline(format!("local PTY {:.3} ms / {:.3} ms", ms(l50), ms(l99)))
        .goal("≤ 20 ms p99 added")
        .note(format!(
            "{KEYS} keystrokes each; added p99 {:.2} ms",
            ms(w99) - ms(l99)
        )),
    );
    Ok(())
}

/// Files written per path for the save row.
const SAVES: usize = 10;
const SAVE_DEBOUNCE_NOTE: &str = "300 ms";

/// Waits (up to 20 s) until the project has `path`.
async fn saved(stack: &Stack, id: &str, path: &str) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = stack
            .http
            .get(format!("{}/projects/{id}/files/{path}", stack.worker_url))
            .send()
            .await?;
        if r.status() == 200 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < end, "{path} was never saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same keystrokes to bash on a PTY opened in this process.
fn local_echo() -> Result<Vec<Duration>> {
    let (master, slave) = vm_api::pty::open_pty(100, 30)?;
    let mut child = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-i"])
        .env("TERM", "xterm-256color")
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave)
        .spawn()
        .context("bash")?;
    let mut m = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    let mut read_until = |m: &mut std::fs::File, want: &[u8]| -> Result<()> {
        let end = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while Instant::now() < end {
            match m.read(&mut buf) {
                Ok(k) if k > 0 => {
                    got.extend_from_slice(&buf[..k]);
                    if got.windows(want.len()).any(|w| w == want) {
                        return Ok(());
                    }
                }
                _ => std::thread::yield_now(),
            }
        }
        anyhow::bail!(
            "the local shell did not echo {:?}",
            String::from_utf8_lossy(want)
        )
    };
    m.write_all(b"echo R$((40+2))\r")?;
    read_until(&mut m, b"R42")?;
    std::thread::sleep(Duration::from_millis(200));
    let mut v = Vec::with_capacity(KEYS);
    for i in 0..KEYS {
        let c = [b'a' + (i % 26) as u8];
        let t0 = Instant::now();
        m.write_all(&c)?;
        read_until(&mut m, &c)?;
        v.push(t0.elapsed());
        if i % 50 == 49 {
            m.write_all(b"\x15")?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(v)
}
