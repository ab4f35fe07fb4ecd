//! Per-user quotas end to end, on the real stack with the scripted LLM as the provider: the
//! daily spend cap under 20 parallel turns, the model allow-list and unknown prices, message
//! and queue caps, and a person's own OpenRouter key (BYOK) used for their turns instead of
//! the operator's.

use e2e::llm::{Item, Reply};
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::time::Duration;

const MODEL: &str = "scripted/model-a";

fn opts(vars: &[(&str, &str)]) -> Options {
    let mut v: Vec<(String, String)> = vec![
        ("VERIFY_FIX_ROUNDS".into(), "0".into()),
        ("DEFAULT_MODEL".into(), MODEL.into()),
    ];
    v.extend(vars.iter().map(|(k, x)| (k.to_string(), x.to_string())));
    Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: v,
    }
}

/// A text answer whose usage chunk reports `cost` USD, as OpenRouter does.
fn costing(text: &str, cost: f64) -> Reply {
    Reply::Stream(vec![
        Item::Text(text.into()),
        Item::Finish("stop".into()),
        Item::Usage {
            prompt: 100,
            completion: 20,
            cost: Some(cost),
        },
        Item::Done,
    ])
}

fn completions(stack: &Stack) -> Vec<e2e::llm::Recorded> {
    stack
        .llm
        .as_ref()
        .unwrap()
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect()
}

async fn say(ws: &mut ProjectSocket, text: &str, model: Option<&str>) {
    let mut m = json!({"type": "user_message", "text": text});
    if let Some(model) = model {
        m["model"] = json!(model);
    }
    ws.send(&m).await.unwrap();
}

/// The next `error` event on this socket (transient, `seq` 0).
async fn next_error(ws: &mut ProjectSocket) -> String {
    let (e, _) = ws.until("error").await.unwrap();
    assert_eq!(e["seq"], 0, "{e}");
    e["message"].as_str().unwrap().to_string()
}

async fn quota_status(stack: &Stack) -> Value {
    let (status, v) = stack.get_json("/api/quota").await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn twenty_parallel_turns_never_spend_more_than_the_cap_plus_one_step() {
    // Cap 5 cents; every step really costs 1 cent (the provider's usage.cost) and is bounded
    // beforehand from the /models prices at 1 cent + the request's bytes + 4,096 completion
    // tokens, about 1.5 cents.
    let (cap, step) = (0.05, 0.01);
    let stack = Stack::start(opts(&[("DAILY_SPEND_CAP_USD", "0.05")]))
        .await
        .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    llm.set_price(MODEL, 1e-8, 1e-6, step, 4096);
    for i in 0..20 {
        llm.push(costing(&format!("answer {i}"), step));
    }
    let ids = futures_util::future::join_all((0..20).map(|i| {
        let stack = &stack;
        async move { stack.create_project(&format!("cap {i}"), "frontend").await }
    }))
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<String>>>()
    .unwrap();
    let mut sockets = Vec::new();
    for id in &ids {
        sockets.push(
            ProjectSocket::connect(&stack.worker_url, id, None)
                .await
                .unwrap()
                .0,
        );
    }
    // All twenty messages go out before any turn is waited for.
    for ws in sockets.iter_mut() {
        say(ws, "build it", None).await;
    }
    let ends = futures_util::future::join_all(
        sockets
            .iter_mut()
            .map(|ws| async move { ws.until("turn_finished").await.unwrap().0 }),
    )
    .await;
    let served = completions(&stack).len();
    let spent_by_provider = served as f64 * step;
    assert!(
        spent_by_provider <= cap + step + 1e-9,
        "{served} steps were sent: ${spent_by_provider} > cap ${cap} + one step"
    );
    // The cap was really reached, not refused from the start.
    assert!(
        served >= 4,
        "only {served} steps ran under a cap of 5 steps"
    );
    let done = ends.iter().filter(|e| e["end"] == "done").count();
    assert_eq!(done, served, "every step sent finished its turn: {ends:?}");
    let refused: Vec<&Value> = ends.iter().filter(|e| e["end"] == "error").collect();
    assert_eq!(refused.len(), 20 - served, "{ends:?}");
    for e in &refused {
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("spending limit is reached"), "{e}");
        assert!(m.contains("own OpenRouter key"), "{e}");
    }
    // The ledger agrees with what the provider billed, and nothing is left in flight.
    let q = quota_status(&stack).await;
    assert!(
        (q["spent_today"].as_f64().unwrap() - spent_by_provider).abs() < 1e-9,
        "{q} vs {served} steps"
    );
    assert_eq!(q["steps_in_flight"], 0, "{q}");
    assert_eq!(q["daily_cap"], cap, "{q}");
    // A later message is refused before anything is sent.
    let before = completions(&stack).len();
    say(&mut sockets[0], "one more", None).await;
    let (fin, _) = sockets[0].until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "error", "{fin}");
    assert_eq!(completions(&stack).len(), before);
    // Claiming to be someone else in the header does not open a fresh budget: the Worker
    // names the user, never the client.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let mut r = format!(
        "{}/projects/{}/ws",
        stack.worker_url.replacen("http", "ws", 1),
        ids[1]
    )
    .into_client_request()
    .unwrap();
    r.headers_mut()
        .insert("x-or-user", "someone-else".parse().unwrap());
    let (mut spoof, _) = tokio_tungstenite::connect_async(r).await.unwrap();
    spoof
        .send(Message::Text(
            json!({"type": "user_message", "text": "free?"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let fin = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(Ok(m)) = spoof.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "turn_finished" {
                    return v;
                }
            }
        }
        panic!("the socket closed before the turn finished")
    })
    .await
    .expect("turn_finished within 60 s");
    assert_eq!(fin["end"], "error", "{fin}");
    assert!(
        fin["message"]
            .as_str()
            .unwrap()
            .contains("spending limit is reached"),
        "{fin}"
    );
    assert_eq!(completions(&stack).len(), before);
}

#[tokio::test]
async fn models_off_the_allow_list_unknown_prices_and_oversized_or_excess_messages_are_refused() {
    let stack = Stack::start(opts(&[
        ("ALLOWED_MODELS", "scripted/*"),
        ("DAILY_SPEND_CAP_USD", "1"),
        ("MAX_QUEUED_MESSAGES", "1"),
    ]))
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    // scripted/unpriced is allowed (scripted/*) but the provider does not list it: no price.
    llm.set_price(MODEL, 1e-8, 1e-6, 0.0, 1024);
    let id = stack.create_project("allow", "frontend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();

    // Not on the list: refused on the socket, no turn, nothing sent to the provider.
    say(&mut ws, "hi", Some("openai/gpt-4o")).await;
    let m = next_error(&mut ws).await;
    assert!(
        m.contains("\"openai/gpt-4o\" is not allowed") && m.contains("scripted/*"),
        "{m}"
    );
    // The picker lists only allowed models.
    let (_, models) = stack.get_json("/api/models").await.unwrap();
    let listed: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        !listed.is_empty() && listed.iter().all(|m| m.starts_with("scripted/")),
        "{models}"
    );

    // Allowed but with no price under a cap: the turn fails closed before spending.
    say(&mut ws, "hi", Some("scripted/unpriced")).await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "error", "{fin}");
    let m = fin["message"].as_str().unwrap();
    assert!(
        m.contains("price of the model \"scripted/unpriced\" is unknown"),
        "{m}"
    );
    assert!(completions(&stack).is_empty());

    // Too long: a clear error, and the message is not lost for a shorter retry.
    let long = "x".repeat(33 * 1024);
    say(&mut ws, &long, None).await;
    let m = next_error(&mut ws).await;
    assert!(
        m.contains("33792 bytes") && m.contains("limit is 32768"),
        "{m}"
    );

    // The queue holds one message behind a running turn; the next is refused. The first
    // answer stalls until it is stopped, so the turn is surely running meanwhile.
    llm.push(Reply::Stream(vec![
        Item::Text("slow".into()),
        Item::Sleep(Duration::from_secs(120)),
        Item::Finish("stop".into()),
        Item::Usage {
            prompt: 10,
            completion: 1,
            cost: Some(0.001),
        },
        Item::Done,
    ]));
    llm.push(costing("second", 0.001));
    say(&mut ws, "first", None).await;
    // Its answer has begun streaming, so the turn runs until stopped.
    ws.until("assistant_delta").await.unwrap();
    say(&mut ws, "second", None).await;
    let (q, _) = ws.until("queued").await.unwrap();
    assert_eq!(q["position"], 1, "{q}");
    say(&mut ws, "third", None).await;
    let m = next_error(&mut ws).await;
    assert!(m.contains("already waiting"), "{m}");
    ws.send(&json!({"type": "stop"})).await.unwrap();
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "stopped", "{fin}");
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert_eq!(completions(&stack).len(), 2);
    // The stopped step never reported its cost, so it is charged its whole reservation (at
    // least its 1,024 completion tokens at $1e-6); the finished one its reported $0.001.
    let q = quota_status(&stack).await;
    let spent = q["spent_today"].as_f64().unwrap();
    assert!((0.001 + 0.001024..0.01).contains(&spent), "{q}");

    // The seed's endpoint has the same size cap.
    let r = stack
        .http
        .post(format!("{}/chat/stream", stack.worker_url))
        .json(&json!({"project_id": id, "message": long}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn a_byok_users_requests_carry_their_key_and_never_the_operators() {
    const OPERATOR: &str = "sk-or-operator-key-0000";
    const USER: &str = "sk-or-v1-users-own-key-5678";
    // The scripted server plays OpenRouter with the operator's key; no other provider.
    let mut o = opts(&[
        ("LLM_BASE_URL", ""),
        ("OPENROUTER_API_KEY", OPERATOR),
        // A cap of 0: every operator-paid step is refused, so only the own key can spend.
        ("DAILY_SPEND_CAP_USD", "0"),
        (
            "KEY_ENCRYPTION_SECRET",
            "e2e-key-encryption-secret-0123456789",
        ),
    ]);
    o.llm_as_fallback = true;
    let stack = Stack::start(o).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    llm.set_price(MODEL, 1e-8, 1e-6, 0.0, 1024);
    let url = format!("{}/api/quota/key", stack.worker_url);

    // Bad keys are refused with a reason and store nothing.
    for (body, want) in [
        (json!({"key": "has a space in it"}), "printable ASCII"),
        (json!({"key": "short"}), "8 to 512"),
        (json!({"nope": 1}), "expected {\"key\""),
    ] {
        let r = stack.http.put(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{v}"
        );
    }
    assert_eq!(quota_status(&stack).await["key"]["set"], false);

    let r = stack
        .http
        .put(&url)
        .json(&json!({"key": USER}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = r.text().await.unwrap();
    assert!(!t.contains("own-key"), "the key came back: {t}");
    let q = quota_status(&stack).await;
    assert_eq!(q["key"], json!({"set": true, "last4": "5678"}));
    assert!(!q.to_string().contains("own-key"));

    let id = stack.create_project("byok", "frontend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    llm.push(costing("paid by you", 0.003));
    say(&mut ws, "hello", None).await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let rec = completions(&stack);
    assert_eq!(rec.len(), 1);
    assert_eq!(
        rec[0].authorization.as_deref(),
        Some(&*format!("Bearer {USER}"))
    );
    // Nothing went to the provider with the operator's key, not even a price lookup.
    assert!(llm
        .models_authorizations()
        .iter()
        .all(|a| a.as_deref() != Some(&*format!("Bearer {OPERATOR}"))));
    // The key never reaches the browser's stream.
    assert!(!serde_json::to_string(&events).unwrap().contains("own-key"));
    // Their own spending is shown apart and is not charged to the operator's cap.
    let q = quota_status(&stack).await;
    assert!(
        (q["byok_spent_today"].as_f64().unwrap() - 0.003).abs() < 1e-9,
        "{q}"
    );
    assert_eq!(q["spent_today"], 0.0, "{q}");

    // Without the key, the operator's cap (0) applies and nothing is sent.
    let r = stack.http.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(quota_status(&stack).await["key"]["set"], false);
    say(&mut ws, "again", None).await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "error", "{fin}");
    assert!(
        fin["message"]
            .as_str()
            .unwrap()
            .contains("spending limit is reached"),
        "{fin}"
    );
    assert_eq!(completions(&stack).len(), 1);
}

#[tokio::test]
async fn rate_limits_on_projects_turns_and_requests_answer_with_when_to_retry() {
    let stack = Stack::start(opts(&[
        ("RATE_PROJECTS_PER_HOUR", "2"),
        ("RATE_TURNS_PER_HOUR", "1"),
        ("RATE_REQUESTS_PER_MIN", "4"),
    ]))
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = stack.create_project("rate 1", "frontend").await.unwrap();
    stack.create_project("rate 2", "frontend").await.unwrap();
    let r = stack
        .http
        .post(format!("{}/projects", stack.worker_url))
        .json(&json!({"name": "rate 3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("too many new projects: at most 2 per hour"),
        "{v}"
    );
    assert!(m.contains("try again in"), "{v}");

    // The socket is request 1 of 4 this minute.
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    llm.push(costing("one", 0.0));
    say(&mut ws, "first", None).await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    say(&mut ws, "second", None).await;
    let m = next_error(&mut ws).await;
    assert!(
        m.contains("too many chat messages: at most 1 per hour"),
        "{m}"
    );
    assert_eq!(completions(&stack).len(), 1);

    // Requests 2-4 pass, the fifth in the same minute is refused.
    let files = format!("/projects/{id}/files");
    for _ in 0..3 {
        assert_eq!(stack.get_json(&files).await.unwrap().0, 200);
    }
    let (status, v) = stack.get_json(&files).await.unwrap();
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{v}"
    );
}
