//! `stack`: boots the real local stack (Azurite, the VM API, `wrangler dev`) with the scripted LLM
//! for tests written in other languages (the browser tests). It prints one JSON line
//! `{"worker_url","vm_url","llm_url","state_dir"}`, queues the replies of `--script FILE`, then
//! reads commands from stdin, one JSON object per line, answering each with one JSON line:
//!
//! - `{"push": [reply, ...]}` queues more replies → `{"ok": true, "remaining": n}`
//! - `{"remaining": true}` → `{"ok": true, "remaining": n, "requests": n}`
//!
//! `--oidc` also starts a real OpenID provider (`tests/oidc/server.mjs`) and runs the Worker
//! with sign-in through it (its issuer is printed as `oidc_issuer`).
//!
//! When stdin closes the stack is dropped, which kills every child process.
//!
//! A reply is either the serde form of [`e2e::llm::Reply`] (`{"Stream": [items]}`,
//! `{"Status": {...}}`, with `{"Sleep": ms}` items in milliseconds) or a shorthand:
//! `{"text": "...", "delay_ms"?: n, "chunk"?: n}` for a streamed answer (optionally slow), or
//! `{"tools": [[name, args], ...], "text"?: "..."}` for tool calls.

use anyhow::{bail, Context, Result};
use e2e::llm::{finish, Item, Reply};
use e2e::stack::{Options, Stack};
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `{"Sleep": 250}` (milliseconds) → the serde form of `Duration`.
fn millis_to_duration(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Number(n)) = m.get("Sleep") {
                let ms = n.as_u64().unwrap_or(0);
                m.insert(
                    "Sleep".into(),
                    json!({"secs": ms / 1000, "nanos": (ms % 1000) * 1_000_000}),
                );
            }
            for x in m.values_mut() {
                millis_to_duration(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(millis_to_duration),
        _ => {}
    }
}

fn text_items(text: &str, chunk: usize, delay_ms: u64) -> Vec<Item> {
    let chars: Vec<char> = text.chars().collect();
    let mut items = Vec::new();
    for c in chars.chunks(chunk.max(1)) {
        if delay_ms > 0 && !items.is_empty() {
            items.push(Item::Sleep(Duration::from_millis(delay_ms)));
        }
        items.push(Item::Text(c.iter().collect()));
    }
    items
}

fn parse_reply(v: &Value) -> Result<Reply> {
    if let Some(text) = v
        .get("text")
        .and_then(Value::as_str)
        .filter(|_| v.get("tools").is_none())
    {
        let chunk = v.get("chunk").and_then(Value::as_u64).unwrap_or(8) as usize;
        let delay = v.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
        let mut items = text_items(text, chunk, delay);
        items.extend(finish("stop"));
        return Ok(Reply::Stream(items));
    }
    if let Some(tools) = v.get("tools").and_then(Value::as_array) {
        let calls: Vec<(String, Value)> = tools
            .iter()
            .map(|t| {
                let name = t.get(0).and_then(Value::as_str).context("tool name")?;
                Ok((name.to_string(), t.get(1).cloned().unwrap_or(json!({}))))
            })
            .collect::<Result<_>>()?;
        let refs: Vec<(&str, Value)> = calls.iter().map(|(n, a)| (n.as_str(), a.clone())).collect();
        return Ok(Reply::tool_calls(
            v.get("text").and_then(Value::as_str),
            &refs,
        ));
    }
    let mut raw = v.clone();
    millis_to_duration(&mut raw);
    serde_json::from_value(raw).with_context(|| format!("not a reply: {v}"))
}

fn parse_replies(v: &Value) -> Result<Vec<Reply>> {
    match v {
        Value::Array(a) => a.iter().map(parse_reply).collect(),
        _ => bail!("expected a JSON array of replies"),
    }
}

fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut script: Option<String> = None;
    // The IDE tests script every model step themselves; the verify loop (covered by the golden
    // test) would add steps they did not script. `--var VERIFY_FIX_ROUNDS=2` turns it back on.
    let mut vars = vec![("VERIFY_FIX_ROUNDS".to_string(), "0".to_string())];
    let mut with_oidc = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--oidc" => with_oidc = true,
            "--script" => script = Some(args.next().context("--script FILE")?),
            "--var" => {
                let kv = args.next().context("--var NAME=VALUE")?;
                let (k, v) = kv.split_once('=').context("--var NAME=VALUE")?;
                vars.push((k.to_string(), v.to_string()));
            }
            other => bail!(
                "unknown argument {other:?}; usage: stack [--script FILE] [--var NAME=VALUE]... [--oidc]"
            ),
        }
    }
    let (oidc, worker_port) = if with_oidc {
        let port = e2e::stack::free_port();
        let p = e2e::oidc::OidcProvider::start(port).await?;
        vars.extend(p.vars());
        (Some(p), Some(port))
    } else {
        (None, None)
    };
    let stack = Stack::start_on(
        Options {
            with_llm: true,
            vars,
            ..Default::default()
        },
        worker_port,
    )
    .await?;
    let llm = stack
        .llm
        .as_ref()
        .context("the scripted LLM did not start")?;
    if let Some(path) = script {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
        for r in parse_replies(&v)? {
            llm.push(r);
        }
    }
    say(json!({
        "worker_url": stack.worker_url,
        "vm_url": stack.vm_url,
        "llm_url": llm.base_url(),
        "state_dir": stack.state.path(),
        "oidc_issuer": oidc.as_ref().map(|o| o.issuer.clone()),
    }));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(e) => json!({"ok": false, "error": format!("bad JSON: {e}")}),
            Ok(cmd) if cmd.get("push").is_some() => match parse_replies(&cmd["push"]) {
                Ok(rs) => {
                    for r in rs {
                        llm.push(r);
                    }
                    json!({"ok": true, "remaining": llm.remaining()})
                }
                Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
            },
            Ok(_) => {
                json!({"ok": true, "remaining": llm.remaining(), "requests": llm.recorded().len()})
            }
        };
        say(answer);
    }
    drop(stack);
    drop(oidc);
    Ok(())
}
