//! The scripted LLM server speaks the OpenAI wire format: checked with a plain HTTP client.

use e2e::llm::{Item, Reply, ScriptedLlm};
use serde_json::json;

async fn post(llm: &ScriptedLlm, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", llm.base_url()))
        .header("authorization", "Bearer test-key")
        .json(&json!({"model": "scripted/model-a", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

fn data_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

#[tokio::test]
async fn streams_text_tool_calls_usage_and_done() {
    let llm = ScriptedLlm::start().await.unwrap();
    llm.push(Reply::tool_calls(
        Some("Let me write it."),
        &[(
            "write_file",
            json!({"path": "a.txt", "content": "hello world"}),
        )],
    ));
    let r = post(&llm, true).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let lines = data_lines(&body);
    assert_eq!(*lines.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Let me write it.");
    let calls: Vec<&serde_json::Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(calls.len() > 2, "arguments arrive in several fragments");
    assert_eq!(calls[0]["function"]["name"], "write_file");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert!(calls[1..]
        .iter()
        .all(|c| c.get("id").is_none() && c["index"] == 0));
    let args: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args).unwrap(),
        json!({"path": "a.txt", "content": "hello world"})
    );
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    let usage = chunks.iter().find(|c| c.get("usage").is_some()).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 120);

    let rec = llm.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].authorization.as_deref(), Some("Bearer test-key"));
    assert_eq!(rec[0].body["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn faults_429_500_cut_comment_malformed() {
    let llm = ScriptedLlm::start().await.unwrap();
    llm.push(Reply::status(429, Some(2)));
    llm.push(Reply::status(500, None));
    llm.push(Reply::Stream(vec![
        Item::Comment("OPENROUTER PROCESSING".into()),
        Item::Text("par".into()),
        Item::RawData("{\"choices\": [".into()),
        Item::Cut,
    ]));
    llm.push(Reply::Stream(vec![Item::Text("x".into()), Item::Abort]));

    let r = post(&llm, true).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(post(&llm, true).await.status(), 500);

    let body = post(&llm, true).await.text().await.unwrap();
    assert!(body.starts_with(": OPENROUTER PROCESSING\n\n"), "{body}");
    assert!(body.contains("data: {\"choices\": [\n"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");

    // An aborted stream is a transport error for the reader.
    let r = post(&llm, true).await;
    assert!(r.text().await.is_err());

    // The script is exhausted: a clear 500, not a hang.
    let r = post(&llm, true).await;
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("exhausted"));
}

#[tokio::test]
async fn non_streaming_and_models() {
    let llm = ScriptedLlm::start().await.unwrap();
    llm.push(Reply::text("plain answer"));
    let v: serde_json::Value = post(&llm, false).await.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "plain answer");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let m: serde_json::Value = reqwest::get(format!("{}/models", llm.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["data"][0]["id"], "scripted/model-a");
}

async fn post_body(llm: &ScriptedLlm, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", llm.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn usage_of(body: &str) -> serde_json::Value {
    data_lines(body)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|c| c.get("usage").is_some())
        .expect("a usage chunk")["usage"]
        .clone()
}

#[tokio::test]
async fn models_list_windows_and_prices() {
    let llm = ScriptedLlm::start().await.unwrap();
    let body = reqwest::get(format!("{}/models", llm.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Core's parser reads what the server lists, as it reads OpenRouter's list.
    let models = open_replit_core::llm::models::parse_models(&body).unwrap();
    let small = models
        .iter()
        .find(|m| m.id == "anthropic/claude-scripted-32k")
        .unwrap();
    assert_eq!(small.limits().context_window, 32_768);
    assert_eq!(small.limits().max_output, 4_096);
    let p = small.pricing.unwrap();
    assert_eq!(p.prompt, 3e-6);
    assert!((p.cache_read.unwrap() - 3e-7).abs() < 1e-15);
}

#[tokio::test]
async fn a_request_over_the_window_gets_openrouters_400() {
    let llm = ScriptedLlm::start().await.unwrap();
    llm.push(Reply::text("fits").measured());
    // ~40k tokens of prompt: over the 32k window.
    let big = "lorem ipsum dolor sit amet ".repeat(8_000);
    let r = post_body(
        &llm,
        &json!({"model": "scripted/small-32k", "stream": true, "max_tokens": 1000,
                "messages": [{"role": "user", "content": big}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "This endpoint's maximum context length is 32768 tokens. However, you requested about "
        ),
        "{msg}"
    );
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(
        open_replit_core::agent::context::limit_from_error(msg),
        Some(32_768)
    );
    // Prompt plus max_tokens is what counts; the script item was not used.
    assert_eq!(llm.remaining(), 1);
    let small = "hello ".repeat(100);
    let r = post_body(
        &llm,
        &json!({"model": "scripted/small-32k", "stream": true, "max_tokens": 40000,
                "messages": [{"role": "user", "content": small}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = post_body(
        &llm,
        &json!({"model": "scripted/small-32k", "stream": true, "max_tokens": 1000,
                "messages": [{"role": "user", "content": small}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let u = usage_of(&r.text().await.unwrap());
    let rec = llm.recorded();
    // Real BPE counts: 100 "hello " tokens plus framing, not the fixed 100 of `finish`.
    assert_eq!(u["prompt_tokens"], rec[2].prompt_tokens);
    assert!(
        (100..=125).contains(&rec[2].prompt_tokens),
        "{}",
        rec[2].prompt_tokens
    );
    assert!(u["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(rec[0].status, 400);
}

#[tokio::test]
async fn cache_control_prefixes_are_cached_and_plain_ones_are_not() {
    let llm = ScriptedLlm::start().await.unwrap();
    let sys = "You are the agent. ".repeat(400); // ~2k tokens, cacheable
    let marked = |extra: &str| {
        json!({"model": "anthropic/claude-scripted-32k", "stream": true, "max_tokens": 100,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": sys, "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": extra, "cache_control": {"type": "ephemeral"}}]}
        ]})
    };
    for _ in 0..4 {
        llm.push(Reply::text("ok").measured());
    }
    let u1 = usage_of(
        &post_body(&llm, &marked("first"))
            .await
            .text()
            .await
            .unwrap(),
    );
    let u2 = usage_of(
        &post_body(&llm, &marked("second"))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(u1["prompt_tokens_details"]["cached_tokens"], 0);
    let cached = u2["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached > 1_500,
        "the system prompt is read from the cache: {u2}"
    );
    assert!(cached < u2["prompt_tokens"].as_u64().unwrap());
    // Cached tokens cost a tenth: the second request is cheaper though as long.
    assert!(u2["cost"].as_f64().unwrap() < u1["cost"].as_f64().unwrap() * 0.5);
    // The same prefix without marks is never cached.
    let plain = json!({"model": "anthropic/claude-scripted-32k", "stream": true, "max_tokens": 100,
        "messages": [{"role": "system", "content": sys}, {"role": "user", "content": "x"}]});
    let u3 = usage_of(&post_body(&llm, &plain).await.text().await.unwrap());
    let u4 = usage_of(&post_body(&llm, &plain).await.text().await.unwrap());
    assert_eq!(u3["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u4["prompt_tokens_details"]["cached_tokens"], 0);
}
