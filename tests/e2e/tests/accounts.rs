//! Accounts against the real stack: sign-in through a real OpenID provider (`oidc-provider`),
//! GitHub sign-in against a fake that checks GitHub's documented request shapes, 401 without a
//! credential, 404 for other people's projects (HTTP, socket, terminal, preview), sharing with
//! viewer and editor roles, personal API tokens, socket tickets, logout, sessions that survive
//! a restart, and local mode's loopback-only rule.

use e2e::oidc::{Browser, OidcProvider};
use e2e::stack::{free_port, Options, Stack};
use e2e::ws::open_with;
use serde_json::{json, Value};

async fn signin_stack() -> (Stack, OidcProvider, Options) {
    let port = free_port();
    let oidc = OidcProvider::start(port).await.unwrap();
    let opts = Options {
        vars: oidc.vars(),
        ..Default::default()
    };
    let stack = Stack::start_on(opts.clone(), Some(port)).await.unwrap();
    (stack, oidc, opts)
}

async fn signed_in(stack: &Stack, login: &str) -> Browser {
    let b = Browser::new();
    let (status, url) = b.sign_in(&stack.worker_url, login).await.unwrap();
    assert_eq!(status, 200, "after sign-in: {url}");
    assert_eq!(url, format!("{}/", stack.worker_url));
    b
}

/// (status, JSON body) of a request sent with the browser's cookies.
async fn call(b: &Browser, rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = b.send(rb).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

fn ws_url(stack: &Stack, id: &str, rest: &str) -> String {
    format!(
        "{}/projects/{id}/{rest}",
        stack.worker_url.replacen("http", "ws", 1)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_without_a_session_is_401_and_health_hides_internals() {
    let (stack, _oidc, _) = signin_stack().await;
    let h = &stack.http;
    let u = &stack.worker_url;
    let routes: Vec<(&str, String)> = vec![
        ("GET", "/projects".into()),
        ("POST", "/projects".into()),
        ("GET", "/api/me".into()),
        ("GET", "/api/templates".into()),
        ("GET", "/api/models".into()),
        ("GET", "/api/tokens".into()),
        ("POST", "/api/tokens".into()),
        ("DELETE", "/api/tokens/abc".into()),
        ("POST", "/api/ws-ticket".into()),
        ("GET", "/api/nothing-here".into()),
        ("POST", "/chat/stream".into()),
        ("GET", "/projects/some-app-1234".into()),
        ("GET", "/projects/some-app-1234/files".into()),
        ("GET", "/projects/some-app-1234/files/README.md".into()),
        (
            "PUT",
            "/projects/some-app-1234/files/README.md?base=1".into(),
        ),
        (
            "DELETE",
            "/projects/some-app-1234/files/README.md?base=1".into(),
        ),
        ("GET", "/projects/some-app-1234/checkpoints".into()),
        ("GET", "/projects/some-app-1234/checkpoints/1/diff".into()),
        (
            "POST",
            "/projects/some-app-1234/checkpoints/1/restore".into(),
        ),
        ("GET", "/projects/some-app-1234/export.zip".into()),
        ("POST", "/projects/some-app-1234/terminal".into()),
        ("GET", "/projects/some-app-1234/preview".into()),
        ("POST", "/projects/some-app-1234/preview/start".into()),
        ("POST", "/projects/some-app-1234/preview/restart".into()),
        ("GET", "/projects/some-app-1234/members".into()),
        ("POST", "/projects/some-app-1234/members".into()),
        ("GET", "/projects/some-app-1234/ws".into()),
        ("GET", "/projects/some-app-1234/pty".into()),
    ];
    for (m, p) in &routes {
        let rb = h.request(m.parse().unwrap(), format!("{u}{p}"));
        let rb = if *m == "GET" { rb } else { rb.body("{}") };
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(json!(null));
        assert_eq!(status, 401, "{m} {p}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{m} {p}: {body}");
    }
    // A made-up or malformed bearer token is no better than none.
    for bad in [
        "Bearer orp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer nonsense",
        "Basic abc",
    ] {
        let r = h
            .get(format!("{u}/projects"))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
    }
    // A forged session cookie neither.
    let r = h
        .get(format!("{u}/api/me"))
        .header(
            "cookie",
            "or_session=ors_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The socket without a session: 401 before any upgrade.
    match open_with(&ws_url(&stack, "some-app-1234", "ws"), &[]).await {
        Err((401, _)) => {}
        other => panic!("socket without a session: {:?}", other.err()),
    }
    // Anonymous /health: green/red only, no URL, host or container name.
    let text = h
        .get(format!("{u}/health"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["azure_blob"]["ok"], true, "{text}");
    assert!(v["azure_blob"].get("detail").is_none(), "{text}");
    for leak in ["127.0.0.1", "http", "codebase-projects"] {
        assert!(
            !text.contains(leak),
            "anonymous /health shows {leak}: {text}"
        );
    }
    // What the sign-in page needs is public.
    let (s, cfg) = stack.get_json("/api/config").await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        cfg["auth"],
        json!({"mode": "signin", "providers": ["oidc"]})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_ownership_sharing_tokens_and_logout() {
    let (mut stack, _oidc, opts) = signin_stack().await;
    let u = stack.worker_url.clone();
    let alice = signed_in(&stack, "alice").await;
    // The session cookie: HttpOnly, SameSite=Lax, not Secure on http loopback.
    let (_, line) = alice.cookie("or_session").expect("session cookie");
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Lax"), "{line}");
    assert!(!line.contains("Secure"), "{line}");
    let (s, me) = call(&alice, alice.http.get(format!("{u}/api/me"))).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["user"]["email"], "alice@example.test");
    assert_eq!(me["user"]["name"], "Test alice");
    assert_eq!(me["user"]["provider"], "oidc");
    let alice_id = me["user"]["id"].as_str().unwrap().to_string();
    assert!(alice_id.starts_with("oidc-"), "{alice_id}");

    // Alice's project records her as its owner.
    let (s, created) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects"))
            .json(&json!({"name": "Alice app", "template": "frontend"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["project"]["owner"], alice_id.as_str());
    let id = created["project"]["id"].as_str().unwrap().to_string();
    let (_, list) = call(&alice, alice.http.get(format!("{u}/projects"))).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["projects"][0]["role"], "owner");

    // Bob sees nothing of it: 404 everywhere, even with forged x-or-* headers.
    let bob = signed_in(&stack, "bob").await;
    let (_, bob_me) = call(&bob, bob.http.get(format!("{u}/api/me"))).await;
    let bob_id = bob_me["user"]["id"].as_str().unwrap().to_string();
    let (_, list) = call(&bob, bob.http.get(format!("{u}/projects"))).await;
    assert_eq!(list["projects"], json!([]), "{list}");
    let hidden: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/projects/{id}"), None),
        ("GET", format!("/projects/{id}/files"), None),
        ("GET", format!("/projects/{id}/files/index.html"), None),
        ("PUT", format!("/projects/{id}/files/x.txt?base=1"), None),
        (
            "POST",
            format!("/projects/{id}/checkpoints/1/restore"),
            None,
        ),
        ("GET", format!("/projects/{id}/export.zip"), None),
        (
            "POST",
            format!("/projects/{id}/terminal"),
            Some(json!({"command": "id"})),
        ),
        ("GET", format!("/projects/{id}/preview"), None),
        ("POST", format!("/projects/{id}/preview/start"), None),
        ("GET", format!("/projects/{id}/members"), None),
        ("DELETE", format!("/projects/{id}"), None),
        ("POST", format!("/projects/{id}/fork"), Some(json!({}))),
        (
            "POST",
            "/chat/stream".to_string(),
            Some(json!({"project_id": id, "message": "hi"})),
        ),
        (
            "POST",
            "/api/ws-ticket".to_string(),
            Some(json!({"project": id})),
        ),
    ];
    for (m, p, body) in &hidden {
        let mut rb = bob
            .http
            .request(m.parse().unwrap(), format!("{u}{p}"))
            .header("x-or-user", alice_id.as_str())
            .header("x-or-role", "owner");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let (s, v) = call(&bob, rb).await;
        assert_eq!(s, 404, "bob {m} {p}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "bob {m} {p}: {v}");
    }
    let bob_cookie = bob.cookie_header();
    for rest in ["ws", "pty"] {
        match open_with(
            &ws_url(&stack, &id, rest),
            &[("cookie", &bob_cookie), ("origin", &u)],
        )
        .await
        {
            Err((404, _)) => {}
            other => panic!("bob's {rest} socket: {:?}", other.err()),
        }
    }

    // Shared with bob as a viewer: he lists it, reads files and the stream, and nothing else.
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "BOB@example.test", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["member"]["role"], "viewer");
    let (_, list) = call(&bob, bob.http.get(format!("{u}/projects"))).await;
    assert_eq!(list["projects"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["projects"][0]["role"], "viewer");
    let (s, files) = call(&bob, bob.http.get(format!("{u}/projects/{id}/files"))).await;
    assert_eq!(s, 200, "{files}");
    let (s, _) = call(
        &bob,
        bob.http.get(format!("{u}/projects/{id}/files/index.html")),
    )
    .await;
    assert_eq!(s, 200);
    // A viewer may fork (as they may download): the copy is theirs, alice does not see it.
    let (s, forked) = call(
        &bob,
        bob.http
            .post(format!("{u}/projects/{id}/fork"))
            .json(&json!({"name": "bob's copy"})),
    )
    .await;
    assert_eq!(s, 201, "{forked}");
    let copy = forked["project"]["id"].as_str().unwrap().to_string();
    assert_eq!(forked["project"]["owner"], bob_id.as_str(), "{forked}");
    let (s, _) = call(&bob, bob.http.get(format!("{u}/projects/{copy}/files"))).await;
    assert_eq!(s, 200);
    let (s, _) = call(&alice, alice.http.get(format!("{u}/projects/{copy}"))).await;
    assert_eq!(s, 404, "the fork is bob's alone");
    let (s, _) = call(&bob, bob.http.delete(format!("{u}/projects/{copy}"))).await;
    assert_eq!(s, 200, "bob owns his fork");
    let denied: Vec<(&str, String, Option<Value>)> = vec![
        ("PUT", format!("/projects/{id}/files/x.txt?base=1"), None),
        (
            "DELETE",
            format!("/projects/{id}/files/index.html?base=1"),
            None,
        ),
        (
            "POST",
            format!("/projects/{id}/checkpoints/1/restore"),
            None,
        ),
        (
            "POST",
            format!("/projects/{id}/terminal"),
            Some(json!({"command": "id"})),
        ),
        ("GET", format!("/projects/{id}/preview"), None),
        ("POST", format!("/projects/{id}/preview/start"), None),
        (
            "POST",
            format!("/projects/{id}/members"),
            Some(json!({"handle": "eve@example.test", "role": "editor"})),
        ),
        ("DELETE", format!("/projects/{id}"), None),
        (
            "PATCH",
            format!("/projects/{id}"),
            Some(json!({"name": "viewer was here"})),
        ),
        (
            "POST",
            "/chat/stream".to_string(),
            Some(json!({"project_id": id, "message": "hi"})),
        ),
    ];
    for (m, p, body) in &denied {
        let mut rb = bob
            .http
            .request(m.parse().unwrap(), format!("{u}{p}"))
            .header("x-or-role", "owner");
        rb = match body {
            Some(b) => rb.json(b),
            None => rb.body("x"),
        };
        let (s, v) = call(&bob, rb).await;
        assert_eq!(s, 403, "viewer {m} {p}: {v}");
    }
    match open_with(
        &ws_url(&stack, &id, "pty"),
        &[("cookie", &bob_cookie), ("origin", &u)],
    )
    .await
    {
        Err((403, _)) => {}
        other => panic!("viewer's shell: {:?}", other.err()),
    }
    // The viewer's socket streams events but refuses chat and stop.
    let mut bob_ws = open_with(
        &ws_url(&stack, &id, "ws"),
        &[("cookie", &bob_cookie), ("origin", &u)],
    )
    .await
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    assert_eq!(bob_ws.next().await.unwrap()["type"], "hello");
    bob_ws
        .send(&json!({"type": "user_message", "text": "delete everything"}))
        .await
        .unwrap();
    let e = bob_ws.next().await.unwrap();
    assert_eq!(e["type"], "error", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("may not chat"),
        "{e}"
    );
    bob_ws.send(&json!({"type": "stop"})).await.unwrap();
    assert_eq!(bob_ws.next().await.unwrap()["type"], "error");
    // Alice's save reaches the viewer's stream.
    let (s, v) = call(
        &alice,
        alice
            .http
            .put(format!("{u}/projects/{id}/files/notes.md?base=1"))
            .body("from alice"),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (ev, _) = bob_ws.until("checkpoint_created").await.unwrap();
    assert_eq!(ev["checkpoint"]["n"], 2, "{ev}");

    // A cookie socket needs an Origin; a foreign Origin is refused.
    let alice_cookie = alice.cookie_header();
    for (origin, want) in [(None, 403), (Some("https://evil.example"), 403)] {
        let mut hs = vec![("cookie", alice_cookie.as_str())];
        if let Some(o) = origin {
            hs.push(("origin", o));
        }
        match open_with(&ws_url(&stack, &id, "ws"), &hs).await {
            Err((s, _)) if s == want => {}
            other => panic!("cookie socket with origin {origin:?}: {:?}", other.err()),
        }
    }
    // A one-time ticket opens one socket, for its project only.
    let (s, t) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/api/ws-ticket"))
            .json(&json!({"project": id})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let ticket = t["ticket"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("ort_"));
    let url = format!("{}?ticket={ticket}", ws_url(&stack, &id, "ws"));
    let mut tws = open_with(&url, &[])
        .await
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    assert_eq!(tws.next().await.unwrap()["type"], "hello");
    match open_with(&url, &[]).await {
        Err((401, _)) => {}
        other => panic!("a ticket used twice: {:?}", other.err()),
    }
    // A ticket opens sockets only, not the HTTP API.
    let (_, t) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/api/ws-ticket"))
            .json(&json!({"project": id})),
    )
    .await;
    let r = reqwest::get(format!(
        "{u}/projects/{id}/files?ticket={}",
        t["ticket"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // An invitation for someone who has not signed in yet waits for them.
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "carol@example.test", "role": "editor"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["member"]["user_id"], Value::Null);
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "not an address", "role": "editor"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "dan@example.test", "role": "owner"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let carol = signed_in(&stack, "carol").await;
    let (s, v) = call(
        &carol,
        carol
            .http
            .put(format!("{u}/projects/{id}/files/carol.md?base=2"))
            .body("editor was here"),
    )
    .await;
    assert_eq!(s, 200, "editor save: {v}");
    let (s, v) = call(
        &carol,
        carol
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "eve@example.test", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 403, "an editor may not share: {v}");
    let (s, v) = call(&carol, carol.http.delete(format!("{u}/projects/{id}"))).await;
    assert_eq!(s, 403, "an editor may not delete the project: {v}");
    let (_, members) = call(&alice, alice.http.get(format!("{u}/projects/{id}/members"))).await;
    let roles: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["handle"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("alice@example.test".into(), "owner".into()),
            ("bob@example.test".into(), "viewer".into()),
            ("carol@example.test".into(), "editor".into()),
        ],
        "{members}"
    );
    // Removing bob closes the project to him again.
    let bob_id = members["members"][1]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = call(
        &alice,
        alice
            .http
            .delete(format!("{u}/projects/{id}/members/{bob_id}")),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&bob, bob.http.get(format!("{u}/projects/{id}/files"))).await;
    assert_eq!(s, 404);

    // Personal API tokens: shown once, listed without the secret, usable as Bearer, revocable.
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/api/tokens"))
            .json(&json!({"name": "ci script"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let token_id = v["token"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("orp_"));
    let (s, v) = call(&alice, alice.http.get(format!("{u}/api/tokens"))).await;
    assert_eq!(s, 200);
    assert_eq!(v["tokens"][0]["name"], "ci script");
    assert!(!v.to_string().contains(&secret[4..]), "{v}");
    let plain = reqwest::Client::new();
    let me: Value = plain
        .get(format!("{u}/api/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], alice_id.as_str(), "{me}");
    assert_eq!(me["via"], "token");
    let r = plain
        .get(format!("{u}/projects/{id}/files"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The token drives the seed's POST /chat/stream too (no model configured here: the turn
    // starts and ends with the configuration error, as events of the stream).
    let r = plain
        .post(format!("{u}/chat/stream"))
        .bearer_auth(&secret)
        .json(&json!({"project_id": id, "message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sse = r.text().await.unwrap();
    assert!(sse.contains("event: turn_finished"), "{sse}");

    // Sessions live in the Directory: they survive a Worker restart.
    stack.restart_worker(&opts).await.unwrap();
    let (s, me) = call(&alice, alice.http.get(format!("{u}/api/me"))).await;
    assert_eq!(s, 200, "after restart: {me}");

    // Deleting the token revokes it.
    let (s, _) = call(
        &alice,
        alice.http.delete(format!("{u}/api/tokens/{token_id}")),
    )
    .await;
    assert_eq!(s, 200);
    let r = plain
        .get(format!("{u}/api/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Logout clears the cookie and revokes the session: the old cookie no longer works.
    let old_cookie = alice.cookie_header();
    let (s, _) = call(&alice, alice.http.post(format!("{u}/auth/logout"))).await;
    assert_eq!(s, 200);
    assert!(alice.cookie("or_session").is_none());
    let r = plain
        .get(format!("{u}/projects"))
        .header("cookie", old_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_or_replayed_callback_is_refused() {
    let (stack, _oidc, _) = signin_stack().await;
    let u = &stack.worker_url;
    // A callback whose state was never issued to this browser (login CSRF).
    let b = Browser::new();
    let (s, v) = call(
        &b,
        b.http
            .get(format!("{u}/auth/callback?code=abc&state=ort_forged")),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    // The provider's error comes back as a clear 401.
    let (s, v) = call(
        &b,
        b.http
            .get(format!("{u}/auth/callback?error=access_denied&state=x")),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("access_denied"));
    // An unknown provider is a 400 naming the ones there are.
    let (s, v) = call(&b, b.http.get(format!("{u}/auth/login?provider=myspace"))).await;
    assert_eq!(s, 400, "{v}");
    // A real sign-in's callback works once; replaying it does not sign in again.
    let (first, at) = b
        .follow(format!(
            "{u}/auth/login?provider=oidc&next=//evil.example/x"
        ))
        .await
        .unwrap();
    let html = first.text().await.unwrap();
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let post_to = reqwest::Url::parse(&at).unwrap().join(&action).unwrap();
    let r = b
        .send(b.http.post(post_to.clone()).form(&[
            ("prompt", "login"),
            ("login", "mallory"),
            ("password", "x"),
        ]))
        .await
        .unwrap();
    let mut next = post_to
        .join(r.headers()["location"].to_str().unwrap())
        .unwrap()
        .to_string();
    // Walk to the Worker's callback without taking it.
    let callback = loop {
        let r = b.send(b.http.get(&next)).await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let to = reqwest::Url::parse(&next).unwrap().join(&loc).unwrap();
        if to.path() == "/auth/callback" {
            break to.to_string();
        }
        next = to.to_string();
    };
    let r = b.send(b.http.get(&callback)).await.unwrap();
    assert_eq!(r.status(), 302);
    // `next` was not a same-origin path, so the sign-in lands on the app's root.
    assert_eq!(r.headers()["location"], "/");
    assert!(b.cookie("or_session").is_some());
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&callback)
        .header(
            "cookie",
            format!(
                "or_login={}",
                callback
                    .split("state=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "a replayed callback signed in");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mode_is_one_user_on_loopback_only() {
    let stack = Stack::start(Options::default()).await.unwrap();
    let u = &stack.worker_url;
    let (s, me) = stack.get_json("/api/me").await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(me["user"]["id"], "local");
    assert_eq!(me["mode"], "local");
    let (_, cfg) = stack.get_json("/api/config").await.unwrap();
    assert_eq!(cfg["auth"], json!({"mode": "local", "providers": []}));
    let id = stack.create_project("Local app", "frontend").await.unwrap();
    let (_, p) = stack.get_json(&format!("/projects/{id}")).await.unwrap();
    assert_eq!(p["project"]["owner"], "local", "{p}");
    // Full /health for the local user.
    let (_, h) = stack.get_json("/health").await.unwrap();
    assert!(
        h["vm_api"]["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{h}"
    );
    // A request from off this machine (as a deployed Worker without a provider would get) is
    // refused with a message saying what to configure.
    let r = stack
        .http
        .get(format!("{u}/projects"))
        .header("cf-connecting-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "auth_not_configured", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("AUTH_MODE=open"));
    // Sharing and tokens need sign-in, and say so.
    let (s, _) = stack.get_json("/api/tokens").await.unwrap();
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn github_sign_in_in_its_documented_shapes_and_invitations_by_login() {
    let gh = e2e::github::FakeGithub::start().await.unwrap();
    let port = free_port();
    let oidc = OidcProvider::start(port).await.unwrap();
    let mut vars = oidc.vars();
    vars.extend(gh.vars());
    let stack = Stack::start_on(
        Options {
            vars,
            ..Default::default()
        },
        Some(port),
    )
    .await
    .unwrap();
    let u = stack.worker_url.clone();
    let (_, cfg) = stack.get_json("/api/config").await.unwrap();
    assert_eq!(cfg["auth"]["providers"], json!(["oidc", "github"]));
    // Alice (OpenID) invites the GitHub login before its person ever signed in.
    let alice = signed_in(&stack, "alice").await;
    let (_, created) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects"))
            .json(&json!({"name": "For octo", "template": "frontend"})),
    )
    .await;
    let id = created["project"]["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &alice,
        alice
            .http
            .post(format!("{u}/projects/{id}/members"))
            .json(&json!({"handle": "@Octo-Cat", "role": "editor"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // GitHub sign-in: authorize → callback → token exchange → /user, all checked by the fake.
    let octo = Browser::new();
    let (last, at) = octo
        .follow(format!("{u}/auth/login?provider=github&next=/p/{id}"))
        .await
        .unwrap();
    assert_eq!(last.status(), 200, "{at}");
    assert_eq!(at, format!("{u}/p/{id}"));
    assert_eq!(gh.problems(), Vec::<String>::new());
    assert_eq!(gh.exchanges(), 1);
    let (s, me) = call(&octo, octo.http.get(format!("{u}/api/me"))).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["user"]["id"], "github-4242");
    assert_eq!(me["user"]["login"], "Octo-Cat");
    assert_eq!(me["user"]["name"], "Octo Cat");
    let (_, list) = call(&octo, octo.http.get(format!("{u}/projects"))).await;
    assert_eq!(list["projects"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["projects"][0]["role"], "editor");
    // A code GitHub refuses is a clear 401 naming GitHub's error, and no session.
    let before = gh.exchanges();
    let third = Browser::new();
    let r = third
        .send(third.http.get(format!("{u}/auth/login?provider=github")))
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let state = third.cookie("or_login").unwrap().0;
    let r = third
        .send(third.http.get(format!(
            "{u}/auth/callback?code=code-never-issued&state={state}"
        )))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad_verification_code"),
        "{v}"
    );
    assert_eq!(gh.exchanges(), before + 1);
    assert!(third.cookie("or_session").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn open_mode_only_when_asked_and_bad_settings_refuse_everything() {
    let open = Options {
        vars: vec![("AUTH_MODE".into(), "open".into())],
        ..Default::default()
    };
    let mut stack = Stack::start(open).await.unwrap();
    let (s, me) = stack.get_json("/api/me").await.unwrap();
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["user"]["id"], "open");
    // Open mode serves off-loopback callers too (that is what it is for) ...
    let r = stack
        .http
        .get(format!("{}/api/me", stack.worker_url))
        .header("cf-connecting-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ... but shows them only the anonymous /health.
    let text = stack
        .http
        .get(format!("{}/health", stack.worker_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("127.0.0.1"), "{text}");
    // A half-configured provider or an unknown mode refuses every API call and says why.
    for (vars, want) in [
        (
            vec![("OIDC_ISSUER", "https://id.example.com")],
            "OIDC_CLIENT_ID",
        ),
        (vec![("AUTH_MODE", "yes-please")], "not a mode"),
        (
            vec![
                ("OIDC_ISSUER", "http://id.example.com"),
                ("OIDC_CLIENT_ID", "x"),
                ("OIDC_CLIENT_SECRET", "y"),
            ],
            "must be https",
        ),
    ] {
        let opts = Options {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        stack.restart_worker(&opts).await.unwrap();
        let (s, v) = stack.get_json("/projects").await.unwrap();
        assert_eq!(s, 503, "{vars:?}: {v}");
        assert_eq!(v["error"]["code"], "auth_misconfigured", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{vars:?}: {v}"
        );
    }
}
