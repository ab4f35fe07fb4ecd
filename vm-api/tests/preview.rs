//! The preview origin end to end: token → cookie, HTTP proxying to real dev servers started as
//! managed processes in bwrap, header scrubbing, and a WebSocket upgrade through the proxy.

mod common;
use axum::http::StatusCode;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use vm_api::mint_preview_token;

/// A dev server using only Python's stdlib: echoes request headers as JSON, and speaks just
/// enough WebSocket (RFC 6455) to echo text frames.
const ECHO_PY: &str = r#"
import base64, hashlib, json, os, struct, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"]
            acc = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", acc)
            self.end_headers()
            self.wfile.flush()
            self.ws_loop()
            self.close_connection = True
            return
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def ws_loop(self):
        r = self.rfile
        while True:
            hdr = r.read(2)
            if len(hdr) < 2:
                return
            op, n = hdr[0] & 0x0F, hdr[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", r.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4) if hdr[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if op == 8:
                self.wfile.write(b"\x88\x00")
                self.wfile.flush()
                return
            if op == 1:
                out = ("echo:" + data.decode()).encode()
                head = bytes([0x81, len(out)]) if len(out) < 126 else bytes([0x81, 126]) + struct.pack(">H", len(out))
                self.wfile.write(head + out)
                self.wfile.flush()
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
print("listening", flush=True)
srv.serve_forever()
"#;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(
    preview: SocketAddr,
    project: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut rb = client().get(format!("http://{preview}{path}")).header(
        "host",
        format!("{project}.preview.localhost:{}", preview.port()),
    );
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

async fn start(st: &Arc<vm_api::AppState>, project: &str, name: &str, command: &str) -> u16 {
    let (s, v) = call_json(
        st,
        "POST",
        &format!("/projects/{project}/processes"),
        json!({"name": name, "command": command}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let port = v["port"].as_u64().unwrap() as u16;
    let up = eventually(20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "dev server {name} never listened on {port}");
    port
}

#[tokio::test]
async fn token_cookie_http_proxy_and_websocket() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, api, preview) = serve(state(&tmp)).await;
    std::fs::create_dir_all(st.project_dir("p1")).unwrap();
    std::fs::write(st.project_dir("p1").join("echo.py"), ECHO_PY).unwrap();
    let exp = vm_api::auth::now_unix() + 600;
    let token = mint_preview_token(SECRET, "p1", exp);

    // No token, no cookie: 401 page.
    let r = get(preview, "p1", "/", &[]).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // A token for another project does not open this one.
    let other = mint_preview_token(SECRET, "p2", exp);
    let r = get(preview, "p1", &format!("/?or_token={other}"), &[]).await;
    assert_eq!(r.status(), 401);
    let r = get(
        preview,
        "p1",
        "/",
        &[("cookie", &format!("or_preview={other}"))],
    )
    .await;
    assert_eq!(r.status(), 401);
    // An expired token is refused.
    let old = mint_preview_token(SECRET, "p1", vm_api::auth::now_unix() - 1);
    let r = get(preview, "p1", &format!("/?or_token={old}"), &[]).await;
    assert_eq!(r.status(), 401);

    // A valid token: cookie set, redirected to the same URL without the token.
    let r = get(preview, "p1", &format!("/hello?x=1&or_token={token}"), &[]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/hello?x=1");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with(&format!("or_preview={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=None")
            && cookie.contains("Partitioned")
            && cookie.contains("Path=/")
    );
    assert!(
        !cookie.to_lowercase().contains("domain="),
        "host-only cookie: {cookie}"
    );

    let with_cookie = format!("theme=dark; or_preview={token}");
    let r = get(preview, "p1", "/", &[("cookie", &with_cookie)]).await;
    assert_eq!(r.status(), 502, "no dev server yet");
    assert!(r.text().await.unwrap().contains("No dev server running"));

    // A dev server that runs but does not listen yet: a page navigation gets a page that
    // reloads itself; anything else a plain 502.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "slow", "command": "exec sleep 60"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let r = get(
        preview,
        "p1",
        "/",
        &[("cookie", &with_cookie), ("accept", "text/html,*/*")],
    )
    .await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(r#"<meta http-equiv="refresh" content="2">"#),
        "{body}"
    );
    assert!(body.contains("Starting the app"), "{body}");
    assert!(!body.contains("<script"), "{body}");
    let r = get(preview, "p1", "/api/items", &[("cookie", &with_cookie)]).await;
    assert_eq!(r.status(), 502);
    assert!(!r.text().await.unwrap().contains("http-equiv"));
    let (s, v) = call_json(&st, "DELETE", "/projects/p1/processes/slow", json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A dev server may not claim the VM API's own ports.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "web", "command": "true", "port": api.port()}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    start(&st, "p1", "web", "exec python3 -u echo.py").await;
    let r = get(
        preview,
        "p1",
        "/hello?x=1",
        &[
            ("cookie", &with_cookie),
            ("authorization", "Bearer worker-secret"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["path"], "/hello?x=1");
    assert_eq!(
        v["headers"]["cookie"], "theme=dark",
        "our cookie is stripped: {v}"
    );
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    assert_eq!(
        v["headers"]["host"],
        format!("p1.preview.localhost:{}", preview.port())
    );
    assert_eq!(
        v["headers"]["x-forwarded-host"],
        format!("p1.preview.localhost:{}", preview.port())
    );

    // WebSocket upgrade through the proxy (what Vite's HMR does).
    let mut req = format!("ws://p1.preview.localhost:{}/hmr", preview.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", with_cookie.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(preview).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "second message"] {
        ws.send(Message::text(msg)).await.unwrap();
        let got = ws.next().await.unwrap().unwrap();
        assert_eq!(got.into_text().unwrap().as_str(), format!("echo:{msg}"));
    }
    ws.close(None).await.unwrap();

    // Without the cookie the upgrade is refused.
    let req = format!("ws://p1.preview.localhost:{}/hmr", preview.port())
        .into_client_request()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(preview).await.unwrap();
    assert!(tokio_tungstenite::client_async(req, tcp).await.is_err());

    st.shutdown().await;
    let r = get(preview, "p1", "/", &[("cookie", &with_cookie)]).await;
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn static_files_from_python_http_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, _api, preview) = serve(state(&tmp)).await;
    let dir = st.project_dir("site");
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/index.html"), "<h1>Habit tracker</h1>").unwrap();
    // Not named "web": the first running process with a port is the preview.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/site/processes",
        json!({"name": "static", "command": "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1", "cwd": "dist"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let port = v["port"].as_u64().unwrap() as u16;
    assert!(
        eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
        .await
    );
    let token = mint_preview_token(SECRET, "site", vm_api::auth::now_unix() + 60);
    let cookie = format!("or_preview={token}");
    let r = get(preview, "site", "/index.html", &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<h1>Habit tracker</h1>");
    let r = get(preview, "site", "/missing.js", &[("cookie", &cookie)]).await;
    assert_eq!(
        r.status(),
        404,
        "the dev server's own status passes through"
    );
    // Unknown hosts are not previews.
    let r = client()
        .get(format!("http://{preview}/"))
        .header("host", "example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    st.shutdown().await;
}

#[tokio::test]
async fn html_gets_the_capture_script_and_reports_reach_the_worker_route() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, _api, preview) = serve(state(&tmp)).await;
    let dir = st.project_dir("cap1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><html><head><title>app</title></head><body>hi</body></html>",
    )
    .unwrap();
    std::fs::write(dir.join("data.json"), "{\"head\": \"<head>\"}").unwrap();
    let token = mint_preview_token(SECRET, "cap1", vm_api::auth::now_unix() + 600);
    let cookie = format!("or_preview={token}");
    start(
        &st,
        "cap1",
        "web",
        "exec python3 -m http.server $PORT --bind 127.0.0.1",
    )
    .await;

    // A navigation gets the tag at the top of <head>, with a correct length.
    let r = get(
        preview,
        "cap1",
        "/",
        &[
            ("cookie", &cookie),
            ("accept", "text/html,application/xhtml+xml"),
            ("accept-encoding", "gzip, br"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with(&format!(
            "<!doctype html><html><head>{}<title>",
            vm_api::browser::CAPTURE_TAG
        )),
        "{body}"
    );
    // Anything else passes through untouched.
    let r = get(preview, "cap1", "/data.json", &[("cookie", &cookie)]).await;
    assert_eq!(r.text().await.unwrap(), "{\"head\": \"<head>\"}");

    // The script itself, from the proxy, behind the same cookie.
    let r = get(
        preview,
        "cap1",
        "/__open_replit/capture.js",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(r.text().await.unwrap().contains("unhandledrejection"));
    let r = get(preview, "cap1", "/__open_replit/capture.js", &[]).await;
    assert_eq!(r.status(), 401);

    let post = |body: String, with_cookie: bool| {
        let mut rb = client()
            .post(format!("http://{preview}/__open_replit/report"))
            .header("host", format!("cap1.preview.localhost:{}", preview.port()))
            .body(body);
        if with_cookie {
            rb = rb.header("cookie", cookie.clone());
        }
        rb.send()
    };
    let err = json!({"kind": "error", "message": "Uncaught TypeError: x is undefined",
                     "source": "http://cap1.preview.localhost/src/App.tsx", "line": 12, "column": 5,
                     "stack": "TypeError: x is undefined\n    at App (App.tsx:12:5)", "url": "/"});
    assert_eq!(post(err.to_string(), false).await.unwrap().status(), 401);
    assert_eq!(post("{nope".into(), true).await.unwrap().status(), 400);
    assert_eq!(
        post(json!({"kind": "rm -rf"}).to_string(), true)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(post("x".repeat(100_000), true).await.unwrap().status(), 413);

    // The Worker's route: nothing yet, then the error; a waiting reader wakes on the load.
    let (s, v) = call_json(
        &st,
        "GET",
        "/projects/cap1/browser-reports",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["next_seq"].as_u64(),
            v["reports"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    assert_eq!(post(err.to_string(), true).await.unwrap().status(), 204);
    let st2 = st.clone();
    let waiter = tokio::spawn(async move {
        call_json(
            &st2,
            "GET",
            "/projects/cap1/browser-reports?since_seq=0&wait_ms=15000",
            serde_json::Value::Null,
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "waits for a page load");
    assert_eq!(
        post(json!({"kind": "load", "url": "/"}).to_string(), true)
            .await
            .unwrap()
            .status(),
        204
    );
    let (_, v) = waiter.await.unwrap();
    assert_eq!(v["loads"], 1, "{v}");
    assert_eq!(v["next_seq"], 2);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["message"], "Uncaught TypeError: x is undefined");
    assert_eq!(reports[0]["line"], 12);
    // Later reads start after what was seen.
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/cap1/browser-reports?since_seq=2",
        serde_json::Value::Null,
    )
    .await;
    assert!(v["reports"].as_array().unwrap().is_empty());
    assert!(v["last_load_age_ms"].as_u64().is_some());
    // Nobody asks for a page within the grace time: the wait ends early, `followed: false`.
    let t0 = std::time::Instant::now();
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/cap1/browser-reports?since_seq=2&wait_ms=15000&grace_ms=300",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["followed"], false, "{v}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    // A navigation within the grace time means a browser follows: it waits for the load.
    let st3 = st.clone();
    let waiter = tokio::spawn(async move {
        call_json(
            &st3,
            "GET",
            "/projects/cap1/browser-reports?since_seq=2&wait_ms=15000&grace_ms=1000",
            serde_json::Value::Null,
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    get(
        preview,
        "cap1",
        "/",
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !waiter.is_finished(),
        "a browser follows: keeps waiting for its load"
    );
    post(json!({"kind": "load", "url": "/"}).to_string(), true)
        .await
        .unwrap();
    let (_, v) = waiter.await.unwrap();
    assert_eq!(
        (v["followed"].as_bool(), v["loads"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    st.shutdown().await;
}
