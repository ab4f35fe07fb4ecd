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
