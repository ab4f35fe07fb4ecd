//! The browser-facing security headers on the real stack: the IDE's pages carry a CSP that
//! allows only their own scripts and the preview origin as a frame, `frame-ancestors 'none'`,
//! nosniff and a Referrer-Policy (no HSTS over plain http); project files served raw carry
//! `Content-Security-Policy: sandbox`, and active types (.html, .svg) download as attachments.

use e2e::stack::{Options, Stack};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn ide_pages_and_raw_project_files_carry_the_security_headers() {
    let stack = Stack::start(Options::default()).await.unwrap();
    // Loopback development: any port of the preview hosts (the stack's is picked freely).
    let preview_src = "http://*.preview.localhost:*";

    for page in ["/", "/p/some-project-1"] {
        let r = stack
            .http
            .get(format!("{}{page}", stack.worker_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert!(
            header(&r, "content-type").starts_with("text/html"),
            "{page}"
        );
        let csp = header(&r, "content-security-policy");
        for want in [
            "script-src 'self';",
            &format!("frame-src {preview_src};"),
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(want), "{page}: {want:?} not in {csp:?}");
        }
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "referrer-policy"), "same-origin");
        // Plain http on loopback: no HSTS (a browser would ignore it, and it must not stick).
        assert_eq!(header(&r, "strict-transport-security"), "");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("onload="),
            "no inline script"
        );
    }
    // The scripts the page loads are served from its own origin, nosniff.
    let r = stack
        .http
        .get(format!("{}/app.js", stack.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    // API answers get the common headers too.
    let r = stack
        .http
        .get(format!("{}/api/config", stack.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "referrer-policy"), "same-origin");

    // Uploaded active files never render on the IDE's origin.
    let id = stack.create_project("headers", "backend").await.unwrap();
    let base = format!("{}/projects/{id}/files", stack.worker_url);
    let files = [
        ("x.html", "<script>alert(document.cookie)</script>"),
        (
            "x.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
        ),
        ("notes.txt", "plain"),
    ];
    for (n, (path, body)) in (1..).zip(files) {
        let r = stack
            .http
            .put(format!("{base}/{path}?base={n}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "PUT {path}");
    }
    for (path, body) in files {
        let r = stack
            .http
            .get(format!("{base}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let csp = header(&r, "content-security-policy");
        assert!(csp.starts_with("sandbox"), "{path}: {csp:?}");
        assert!(
            !csp.contains("script-src 'self'"),
            "{path}: not the IDE's CSP"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        let disp = header(&r, "content-disposition");
        if path == "notes.txt" {
            assert_eq!(disp, "", "{path}: an inert type shows inline");
        } else {
            assert!(
                disp.starts_with("attachment;") && disp.contains(path),
                "{path}: {disp:?}"
            );
        }
        // The editor still reads the content as it is.
        assert_eq!(r.text().await.unwrap(), body);
    }
}
