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
    drop(ws);
    let mut local = tokio::task::spawn_blocking(local_echo).await??;
    let (w50, w99) = (percentile(&mut through, 50), percentile(&mut through, 99));
    let (l50, l99) = (percentile(&mut local, 50), percentile(&mut local, 99));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
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
