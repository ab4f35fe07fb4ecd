//! GitHub sign-in (an OAuth app, not OpenID Connect): the authorize URL, the code exchange and
//! the `/user` call, in GitHub's documented shapes ("Authorizing OAuth apps": web application
//! flow, with PKCE). `GITHUB_OAUTH_URL` / `GITHUB_API_URL` only exist so a test can point them
//! at a local fake; in production they are `https://github.com` and `https://api.github.com`.

use serde::Deserialize;

pub const OAUTH_URL: &str = "https://github.com";
pub const API_URL: &str = "https://api.github.com";
/// Only the public profile: the id (stable), the login (what invitations name) and the name.
pub const SCOPE: &str = "read:user";
pub const API_VERSION: &str = "2022-11-28";
pub const USER_AGENT: &str = "open-replit";

/// `GET {oauth}/login/oauth/authorize?...`
pub fn authorize_url(
    oauth_url: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    format!(
        "{}/login/oauth/authorize?{}",
        oauth_url.trim_end_matches('/'),
        super::form(&[
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", SCOPE),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("allow_signup", "true"),
        ])
    )
}

/// `POST {oauth}/login/oauth/access_token` (with `Accept: application/json`): URL and form.
pub fn token_request(
    oauth_url: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (String, String) {
    (
        format!(
            "{}/login/oauth/access_token",
            oauth_url.trim_end_matches('/')
        ),
        super::form(&[
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ]),
    )
}

/// GitHub answers errors with `200` and an `error` field.
#[derive(Debug, Deserialize)]
pub struct TokenReply {
    pub access_token: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// `GET {api}/user` with `Authorization: Bearer`.
#[derive(Debug, Deserialize)]
pub struct User {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl User {
    pub fn user_id(&self) -> String {
        format!("github-{}", self.id)
    }

    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.login.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = authorize_url(
            "https://github.com/",
            "Iv1",
            "http://127.0.0.1/auth/callback",
            "s",
            "c",
        );
        assert_eq!(u, "https://github.com/login/oauth/authorize?client_id=Iv1&redirect_uri=http%3A%2F%2F127.0.0.1%2Fauth%2Fcallback&scope=read%3Auser&state=s&code_challenge=c&code_challenge_method=S256&allow_signup=true");
        let (url, body) = token_request(OAUTH_URL, "Iv1", "sec", "code", "http://x/cb", "v");
        assert_eq!(url, "https://github.com/login/oauth/access_token");
        assert_eq!(body, "client_id=Iv1&client_secret=sec&code=code&redirect_uri=http%3A%2F%2Fx%2Fcb&code_verifier=v");
        let u: User = serde_json::from_str(r#"{"id": 42, "login": "octo", "name": null}"#).unwrap();
        assert_eq!(u.user_id(), "github-42");
        assert_eq!(u.display_name(), "octo");
        let t: TokenReply = serde_json::from_str(r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#).unwrap();
        assert!(t.access_token.is_none());
    }
}
