//! Context rows: prompt tokens sent per step at turns 1, 10 and 30 of the long project (a 32k
//! Anthropic-style model on the scripted server, which counts with o200k and enforces the
//! window) against the whole history, and the project's estimated input cost with caching
//! (what the simulated cache reported, at the `/models` prices) against the same requests
//! priced without it.

use crate::table::{Row, Table};
use anyhow::{bail, Result};
use e2e::llm::count_tokens;
use e2e::long_project::{component, request, script_turn, FIRST_REQUEST};
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use open_replit_core::llm::models::parse_models;
use serde_json::json;

const MODEL: &str = "anthropic/claude-scripted-32k";
const TURNS: usize = 30;

pub async fn rows(t: &mut Table) -> Result<()> {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "0".into())],
    })
    .await?;
    let llm = stack.llm.as_ref().expect("scripted LLM");
    llm.auto_summaries(true);
    let id = stack.create_project("bench-context", "frontend").await?;
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None).await?;
    // Requests of each turn: [start, end) in the recorded list.
    let mut spans = Vec::new();
    for k in 1..=TURNS {
        let start = llm.recorded().len();
        script_turn(llm, k);
        let text = if k == 1 {
            FIRST_REQUEST.to_string()
        } else {
            request(k)
        };
        ws.send(&json!({"type": "user_message", "text": text, "model": MODEL}))
            .await?;
        let (fin, _) = ws.until("turn_finished").await?;
        if fin["end"] != "done" {
            bail!("turn {k} ended {}: {}", fin["end"], fin["message"]);
        }
        spans.push((start, llm.recorded().len()));
    }
    let rec = llm.recorded();
    if let Some(r) = rec.iter().find(|r| r.status != 200) {
        bail!("a request over the window: {} tokens", r.prompt_tokens);
    }
    // The whole history at turn k: the first request's prompt (system, tools, request) plus
    // every later turn's request, written file, read-back file and answers, unstubbed.
    let base = rec[0].prompt_tokens;
    // (The write's content counts as sent: a JSON-escaped argument.)
    let turn_content = |k: usize| {
        let body = component(k, 6_000);
        let write = json!({"path": format!("src/Panel{k}.tsx"), "content": body}).to_string();
        let req = if k == 1 { 0 } else { count_tokens(&request(k)) };
        req + count_tokens(&write) + count_tokens(&body) + 80
    };
    for k in [1, 10, 30] {
        let (s, e) = spans[k - 1];
        let largest = rec[s..e]
            .iter()
            .filter(|r| !r.summary)
            .map(|r| r.prompt_tokens)
            .max()
            .unwrap_or(0);
        let whole = base + (1..=k).map(turn_content).sum::<u64>();
        t.push(
            Row::new(
                &format!("Context: largest request of turn {k} of {TURNS} (32k model)"),
                format!("{largest} tokens"),
            )
            .baseline(format!("{whole} tokens (whole history resent)"))
            .ratio(largest as f64 / whole as f64)
            .goal("bounded by the budget (≤ 25,804 est.), not growing with the turn")
            .note("o200k count by the scripted server, which rejects anything over 32,768 with max_tokens"),
        );
    }
    let models = parse_models(
        &reqwest::get(format!("{}/models", llm.base_url()))
            .await?
            .text()
            .await?,
    )
    .map_err(anyhow::Error::msg)?;
    let Some(p) = models
        .iter()
        .find(|m| m.id == MODEL)
        .and_then(|m| m.pricing)
    else {
        bail!("{MODEL} has no prices in /models");
    };
    let with: f64 = rec
        .iter()
        .map(|r| p.input_cost(r.prompt_tokens, r.cached_tokens, r.cache_write_tokens))
        .sum();
    let without: f64 = rec.iter().map(|r| r.prompt_tokens as f64 * p.prompt).sum();
    let summaries = rec.iter().filter(|r| r.summary).count();
    t.push(
        Row::new(
            &format!("Context: estimated input cost of the {TURNS}-turn project, cached"),
            format!("${with:.3}"),
        )
        .baseline(format!("${without:.3} without caching"))
        .ratio(with / without)
        .goal("≤ 0.4×")
        .note(format!(
            "{} requests ({summaries} summaries) at $3/M input, $0.30/M cache read, $3.75/M cache write; Anthropic-style cache simulated by the scripted server",
            rec.len()
        )),
    );
    Ok(())
}
