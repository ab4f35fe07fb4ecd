//! Context by tokens and prompt caching on the real stack: a 30-turn project on a 32k model
//! where the scripted server enforces the window (a request that does not fit is a 400 and
//! fails the test), a window learned from a provider's 400, cache_control only for the models
//! that take it, and a new conversation that keeps the files.

use e2e::llm::{Reply, ScriptedLlm};
use e2e::long_project::{run, FIRST_REQUEST};
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};

fn opts() -> Options {
    Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "0".into())],
    }
}

fn has_cache_control(body: &Value) -> bool {
    body["messages"].as_array().unwrap().iter().any(|m| {
        m["content"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x.get("cache_control").is_some()))
    })
}

fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(p) => p.iter().filter_map(|x| x["text"].as_str()).collect(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn thirty_turns_on_a_32k_model_all_finish_and_every_request_fits() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    llm.auto_summaries(true);
    let id = stack.create_project("long", "frontend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    let model = "anthropic/claude-scripted-32k";
    let finished = run(llm, &mut ws, model, 30).await.unwrap();
    assert_eq!(finished.len(), 30);
    assert_eq!(llm.remaining(), 0, "every scripted step was used");

    let rec = llm.recorded();
    // The server enforces prompt + max_tokens <= 32768: no request was rejected.
    let rejected: Vec<u64> = rec
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| r.prompt_tokens)
        .collect();
    assert!(
        rejected.is_empty(),
        "requests over the window: {rejected:?}"
    );
    for r in &rec {
        let out = r.body["max_tokens"]
            .as_u64()
            .expect("max_tokens on every request");
        assert!(
            r.prompt_tokens + out <= 32_768,
            "{} + {out}",
            r.prompt_tokens
        );
    }
    // The history passed the window several times over, so it was compacted, and the first
    // request is still sent verbatim after that.
    let summaries = rec.iter().filter(|r| r.summary).count();
    assert!(summaries >= 1, "no compaction in 30 turns");
    let last = rec.iter().rfind(|r| !r.summary).unwrap();
    let msgs = last.body["messages"].as_array().unwrap();
    assert_eq!(text_of(&msgs[1]), FIRST_REQUEST);
    assert!(text_of(&msgs[2]).contains("Summary"), "{}", msgs[2]);
    // Bounded, not growing: the last turn's requests are no larger than the budget allows,
    // and far below the whole history.
    let whole: u64 = rec
        .iter()
        .filter(|r| !r.summary)
        .map(|r| r.prompt_tokens)
        .max()
        .unwrap();
    assert!(whole < 32_768 - 4_096, "{whole}");

    // Caching: marks on an anthropic/* model, and cached tokens counted in the turns' usage.
    assert!(rec
        .iter()
        .filter(|r| !r.summary)
        .all(|r| has_cache_control(&r.body)));
    let cached: u64 = finished
        .iter()
        .map(|f| f["usage"]["cached_tokens"].as_u64().unwrap())
        .sum();
    let prompt: u64 = finished
        .iter()
        .map(|f| f["usage"]["prompt_tokens"].as_u64().unwrap())
        .sum();
    assert!(cached > prompt / 3, "cached {cached} of {prompt}");
    let server_cached: u64 = rec.iter().map(|r| r.cached_tokens).sum();
    assert_eq!(
        cached, server_cached,
        "the turns report what the provider reported"
    );
    assert!(finished
        .iter()
        .all(|f| f["usage"]["cost"].as_f64().unwrap() > 0.0));
}

#[tokio::test]
async fn a_window_learned_from_a_400_and_no_marks_for_other_models_and_a_new_chat() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm: &ScriptedLlm = stack.llm.as_ref().unwrap();
    llm.auto_summaries(true);
    let id = stack.create_project("learn", "frontend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    // The list says 128k, the server enforces 16k. Six turns fit (their tool traffic is
    // stubbed, and each request leaves room for max_tokens), then one turn reads all six
    // 6 KB files back: past 16k in the middle.
    let model = "scripted/misreported-16k";
    run(llm, &mut ws, model, 6).await.unwrap();
    let statuses: Vec<(u16, u64, u64)> = llm
        .recorded()
        .iter()
        .map(|r| {
            (
                r.status,
                r.prompt_tokens,
                r.body["max_tokens"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        statuses.iter().all(|s| s.0 == 200),
        "(status, prompt tokens, max_tokens) of each request: {statuses:?}"
    );
    for k in 1..=6 {
        llm.push(
            Reply::tool_calls(
                None,
                &[("read_file", json!({"path": format!("src/Panel{k}.tsx")}))],
            )
            .measured(),
        );
    }
    llm.push(Reply::text("All six panels read.").measured());
    ws.send(&json!({"type": "user_message", "text": "review every panel", "model": model}))
        .await
        .unwrap();
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert!(
        events.iter().any(|e| e["type"] == "status"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("context window is 16384 tokens")),
        "{events:?}"
    );
    let rec = llm.recorded();
    let rejected = rec.iter().filter(|r| r.status == 400).count();
    assert_eq!(rejected, 1, "one 400, then the learned window holds");
    let after = rec.iter().position(|r| r.status == 400).unwrap();
    // The resend after the 400 fit (compacted and re-budgeted), and so did everything later.
    assert!(rec[after + 1..].iter().all(|r| r.status == 200));
    assert!(rec[after + 1..]
        .iter()
        .all(|r| r.prompt_tokens + r.body["max_tokens"].as_u64().unwrap() <= 16_384));
    // Not an anthropic/* or gemini model: plain string content, no marks anywhere.
    assert!(rec.iter().all(|r| !has_cache_control(&r.body)));
    assert!(rec.iter().all(|r| r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| !m["content"].is_array())));

    // A new conversation: the next turn sends nothing of the earlier ones; the files stay.
    ws.send(&json!({"type": "new_conversation"})).await.unwrap();
    let (reset, _) = ws.until("conversation_reset").await.unwrap();
    assert_eq!(reset["after_turn"], 7);
    llm.push(Reply::text("Fresh start.").measured());
    ws.send(&json!({"type": "user_message", "text": "what is here?", "model": model}))
        .await
        .unwrap();
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let last = llm.recorded().last().unwrap().body.clone();
    let msgs = last["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "system and the new message only: {last}");
    assert_eq!(text_of(&msgs[1]), "what is here?");
    let status = stack
        .http
        .get(format!(
            "{}/projects/{id}/files/src/Panel6.tsx",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the files stay");
}

#[tokio::test]
async fn the_model_picker_offers_the_configured_default_even_when_the_provider_lacks_it() {
    let mut o = opts();
    o.vars.push((
        "DEFAULT_MODEL".into(),
        "anthropic/not-on-this-server".into(),
    ));
    let stack = Stack::start(o).await.unwrap();
    let (status, models) = stack.get_json("/api/models").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        models["default"], "anthropic/not-on-this-server",
        "{models}"
    );
    assert_eq!(
        models["models"][0]["id"], "anthropic/not-on-this-server",
        "{models}"
    );
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "scripted/model-a"),
        "{models}"
    );
}
