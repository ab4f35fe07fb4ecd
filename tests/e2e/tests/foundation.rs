//! The stack boots, serves the frontend shell, and `/health` tells the truth about each part.

use e2e::stack::{Options, Stack};

#[tokio::test]
async fn stack_boots_and_health_tracks_azurite() {
    let mut stack = Stack::start(Options {
        with_llm: true,
        ..Default::default()
    })
    .await
    .expect("stack starts");

    // The frontend shell comes from the assets binding.
    let page = stack
        .http
        .get(format!("{}/", stack.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>open-replit</title>"), "{html}");

    let (status, h) = stack.get_json("/health").await.unwrap();
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["ok"], true, "{h}");
    assert_eq!(h["azure_blob"]["ok"], true, "{h}");
    assert_eq!(h["vm_api"]["ok"], true, "{h}");
    assert_eq!(h["llm"]["configured"], true, "{h}");
    assert_eq!(h["llm"]["providers"][0], "custom", "{h}");
    assert_eq!(
        h["llm"]["base_url"],
        stack.llm.as_ref().unwrap().base_url(),
        "{h}"
    );
    // No secret is ever echoed.
    let text = h.to_string();
    assert!(
        !text.contains(&stack.vm_secret) && !text.contains("Eby8vdM02"),
        "{text}"
    );

    // Azurite goes away: the Worker answers 503 with a red light naming the problem.
    stack.stop("azurite");
    let (status, h) = stack.get_json("/health").await.unwrap();
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["ok"], false, "{h}");
    assert_eq!(h["azure_blob"]["ok"], false, "{h}");
    let detail = h["azure_blob"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("unreachable") || detail.contains("did not answer"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("127.0.0.1:{}", stack.azurite_port)),
        "{detail}"
    );
    assert_eq!(h["vm_api"]["ok"], true, "{h}");

    // And back to green when it returns.
    stack.restart_azurite().await.unwrap();
    let (status, h) = stack.get_json("/health").await.unwrap();
    assert_eq!(status, 200, "{h}");

    // The VM API going away is reported the same way.
    stack.stop("vm-api");
    let (status, h) = stack.get_json("/health").await.unwrap();
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["vm_api"]["ok"], false, "{h}");
    assert!(
        h["vm_api"]["detail"].as_str().unwrap().contains("VM API"),
        "{h}"
    );
}

#[tokio::test]
async fn without_an_llm_the_page_says_how_to_configure_one() {
    let stack = Stack::start(Options::default())
        .await
        .expect("stack starts");
    let (status, c) = stack.get_json("/api/config").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(c["llm"]["configured"], false, "{c}");
    let hint = c["llm"]["setup_hint"].as_str().unwrap();
    assert!(
        hint.contains("OPENROUTER_API_KEY") && hint.contains("LLM_BASE_URL"),
        "{hint}"
    );

    // Unknown API paths are JSON errors, not the HTML shell.
    let (status, e) = stack.get_json("/api/nope").await.unwrap();
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["code"], "not_found");
}

#[tokio::test]
async fn project_socket_says_hello_and_rejects_garbage() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let stack = Stack::start(Options::default())
        .await
        .expect("stack starts");
    let ws_url = format!(
        "{}/projects/demo-1/ws",
        stack.worker_url.replace("http", "ws")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let hello: serde_json::Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        m => panic!("expected text, got {m:?}"),
    };
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["project_id"], "demo-1");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let err: serde_json::Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        m => panic!("expected text, got {m:?}"),
    };
    assert_eq!(err["type"], "error");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("invalid client message"));
    ws.send(Message::Text(r#"{"type":"ping","nonce":42}"#.into()))
        .await
        .unwrap();
    let pong: serde_json::Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        m => panic!("expected text, got {m:?}"),
    };
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["nonce"], 42);

    // A bad project id never reaches a Durable Object.
    let r = stack
        .http
        .get(format!("{}/projects/..%2Fetc/ws", stack.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused() {
    let stack = Stack::start(Options {
        vars: vec![(
            "ALLOWED_ORIGINS".into(),
            "http://127.0.0.1:5555, http://ide.example".into(),
        )],
        ..Default::default()
    })
    .await
    .expect("stack starts");
    let api = format!("{}/api/config", stack.worker_url);

    // An allowed origin gets CORS headers and a preflight answer.
    let r = stack
        .http
        .get(&api)
        .header("origin", "http://ide.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://ide.example"
    );
    let r = stack
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/projects", stack.worker_url),
        )
        .header("origin", "http://127.0.0.1:5555")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));

    // Any other origin is refused, for HTTP and for the project socket.
    let r = stack
        .http
        .get(&api)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ALLOWED_ORIGINS"),
        "{e}"
    );
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!(
        "{}/projects/demo-2/ws",
        stack.worker_url.replace("http", "ws")
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");

    // The Worker's own origin is always fine.
    let r = stack
        .http
        .get(&api)
        .header("origin", &stack.worker_url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
