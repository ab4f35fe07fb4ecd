//! OpenID Connect authorization code flow with PKCE (S256), as data: the discovery document,
//! the authorization URL, the token request, and the ID token's claims checks.
//!
//! The ID token comes straight from the token endpoint over TLS in this flow, so, as OpenID
//! Connect Core §3.1.3.7 (6) allows, the issuer is authenticated by TLS rather than by the
//! token's signature: the claims are still checked (issuer, audience, authorized party,
//! expiry, nonce). That is why the issuer must be `https` unless it is on loopback.

use super::mode::is_loopback_host;
use super::token::{b64url, hex};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The fields of `{issuer}/.well-known/openid-configuration` the flow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Where discovery lives for `issuer`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Checks an issuer URL from the configuration: https, or http only on loopback.
pub fn check_issuer_url(issuer: &str) -> Result<(), String> {
    let rest = if let Some(r) = issuer.strip_prefix("https://") {
        r
    } else if let Some(r) = issuer.strip_prefix("http://") {
        let host = host_of(r);
        if !is_loopback_host(host) {
            return Err(format!(
                "OIDC_ISSUER {issuer:?} must be https (plain http is only accepted on loopback)"
            ));
        }
        r
    } else {
        return Err(format!("OIDC_ISSUER {issuer:?} is not an http(s) URL"));
    };
    if host_of(rest).is_empty() {
        return Err(format!("OIDC_ISSUER {issuer:?} has no host"));
    }
    Ok(())
}

fn host_of(after_scheme: &str) -> &str {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.starts_with('[') {
        return authority
            .split(']')
            .next()
            .map_or("", |h| &authority[..h.len() + 1]);
    }
    authority.split(':').next().unwrap_or("")
}

impl Discovery {
    /// Parses the document and checks it belongs to `issuer` (§4.3: must be identical, we
    /// forgive a trailing slash) and that its endpoints are as trustworthy as the issuer.
    pub fn parse(body: &str, issuer: &str) -> Result<Discovery, String> {
        let d: Discovery = serde_json::from_str(body)
            .map_err(|e| format!("the issuer's discovery document is not valid: {e}"))?;
        if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(format!(
                "the discovery document names issuer {:?}, not the configured {issuer:?}",
                d.issuer
            ));
        }
        for (name, url) in [
            ("authorization_endpoint", &d.authorization_endpoint),
            ("token_endpoint", &d.token_endpoint),
        ] {
            check_issuer_url(url)
                .map_err(|_| format!("the discovery document's {name} {url:?} must be https"))?;
        }
        if !d.code_challenge_methods_supported.is_empty()
            && !d
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
        {
            return Err("the issuer does not support PKCE with S256".into());
        }
        Ok(d)
    }

    /// `client_secret_basic` unless the issuer lists only `client_secret_post`.
    pub fn uses_basic_auth(&self) -> bool {
        let m = &self.token_endpoint_auth_methods_supported;
        m.is_empty()
            || m.iter().any(|x| x == "client_secret_basic")
            || !m.iter().any(|x| x == "client_secret_post")
    }
}

/// PKCE S256: base64url(sha256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// What one sign-in attempt needs remembered between the redirect and the callback.
pub struct Attempt<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub verifier: &'a str,
}

/// The URL the browser is sent to.
pub fn authorize_url(d: &Discovery, a: &Attempt) -> String {
    let sep = if d.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{}{sep}{}",
        d.authorization_endpoint,
        super::form(&[
            ("response_type", "code"),
            ("client_id", a.client_id),
            ("redirect_uri", a.redirect_uri),
            ("scope", "openid email profile"),
            ("state", a.state),
            ("nonce", a.nonce),
            ("code_challenge", &pkce_challenge(a.verifier)),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// The token request: its form body and, for `client_secret_basic`, the Authorization value.
pub fn token_request(
    d: &Discovery,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (String, Option<String>) {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    if d.uses_basic_auth() {
        // RFC 6749 §2.3.1: both parts are form-encoded before base64.
        let raw = format!(
            "{}:{}",
            super::form_encode(client_id),
            super::form_encode(client_secret)
        );
        use base64::Engine;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        (super::form(&pairs), Some(basic))
    } else {
        pairs.push(("client_id", client_id));
        pairs.push(("client_secret", client_secret));
        (super::form(&pairs), None)
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenReply {
    pub id_token: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct RawClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
}

/// Who signed in, from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `oidc-` and 24 hex digits of sha256(issuer, subject): stable, and safe in headers.
    pub user_id: String,
    pub name: String,
    /// Only a verified email (or one the issuer does not qualify); invitations match it.
    pub email: Option<String>,
}

/// Seconds of clock skew forgiven on `exp` and `iat`.
const SKEW_S: i64 = 120;

/// Decodes the ID token's payload and checks iss, aud, azp, exp, iat and nonce.
pub fn validate_id_token(
    id_token: &str,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now_s: i64,
) -> Result<Identity, String> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or("the ID token is not a JWT")?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the ID token's payload is not base64url")?;
    let c: RawClaims = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the ID token's claims are not valid: {e}"))?;
    if c.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!(
            "the ID token was issued by {:?}, not {issuer:?}",
            c.iss
        ));
    }
    let auds = match c.aud {
        Audience::One(a) => vec![a],
        Audience::Many(a) => a,
    };
    if !auds.iter().any(|a| a == client_id) {
        return Err("the ID token is not meant for this client (aud)".into());
    }
    if auds.len() > 1 && c.azp.as_deref() != Some(client_id) {
        return Err("the ID token has several audiences and another authorized party".into());
    }
    if let Some(azp) = &c.azp {
        if azp != client_id {
            return Err("the ID token's authorized party (azp) is another client".into());
        }
    }
    if c.exp + SKEW_S < now_s {
        return Err("the ID token has expired".into());
    }
    if c.iat.is_some_and(|iat| iat > now_s + SKEW_S) {
        return Err("the ID token was issued in the future (check the clock)".into());
    }
    if c.nonce.as_deref() != Some(nonce) {
        return Err("the ID token's nonce does not match this sign-in".into());
    }
    if c.sub.is_empty() {
        return Err("the ID token has no subject".into());
    }
    let email = c.email.filter(|_| c.email_verified != Some(false));
    let name = c
        .name
        .clone()
        .or(c.preferred_username.clone())
        .or(email.clone())
        .unwrap_or_else(|| c.sub.clone());
    Ok(Identity {
        user_id: user_id(&c.iss, &c.sub),
        name,
        email: email.map(|e| e.to_ascii_lowercase()),
    })
}

/// A stable id for an issuer's subject.
pub fn user_id(iss: &str, sub: &str) -> String {
    let h = Sha256::digest(format!("{}\n{sub}", iss.trim_end_matches('/')).as_bytes());
    format!("oidc-{}", &hex(&h)[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            b64url(claims.to_string().as_bytes())
        )
    }

    const ISS: &str = "https://id.example.com";

    fn good() -> serde_json::Value {
        serde_json::json!({"iss": ISS, "sub": "u1", "aud": "cid", "exp": 2000, "iat": 1000,
            "nonce": "n1", "email": "Ann@Example.com", "name": "Ann"})
    }

    #[test]
    fn rfc7636_vector() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn valid_token_gives_a_stable_identity() {
        let id = validate_id_token(&jwt(good()), ISS, "cid", "n1", 1500).unwrap();
        assert_eq!(id.name, "Ann");
        assert_eq!(id.email.as_deref(), Some("ann@example.com"));
        assert_eq!(id.user_id, user_id(ISS, "u1"));
        assert!(id.user_id.starts_with("oidc-") && id.user_id.len() == 29);
        assert_ne!(id.user_id, user_id("https://other", "u1"));
    }

    #[test]
    fn each_claim_is_checked() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("iss", serde_json::json!("https://evil"), "issued by"),
            ("aud", serde_json::json!("other"), "aud"),
            (
                "aud",
                serde_json::json!(["cid", "other"]),
                "several audiences",
            ),
            ("azp", serde_json::json!("other"), "authorized party"),
            ("exp", serde_json::json!(1000), "expired"),
            ("iat", serde_json::json!(9999), "future"),
            ("nonce", serde_json::json!("n2"), "nonce"),
        ];
        for (k, v, want) in cases {
            let mut c = good();
            c[k] = v;
            let e = validate_id_token(&jwt(c), ISS, "cid", "n1", 1500).unwrap_err();
            assert!(e.contains(want), "{k}: {e}");
        }
        assert!(validate_id_token("garbage", ISS, "cid", "n1", 1500).is_err());
        let mut c = good();
        c.as_object_mut().unwrap().remove("nonce");
        assert!(validate_id_token(&jwt(c), ISS, "cid", "n1", 1500).is_err());
        let mut c = good();
        c["email_verified"] = serde_json::json!(false);
        let id = validate_id_token(&jwt(c), ISS, "cid", "n1", 1500).unwrap();
        assert_eq!(id.email, None);
    }

    #[test]
    fn discovery_and_urls() {
        let body = serde_json::json!({"issuer": ISS, "authorization_endpoint": "https://id.example.com/auth",
            "token_endpoint": "https://id.example.com/token",
            "code_challenge_methods_supported": ["S256"]})
        .to_string();
        let d = Discovery::parse(&body, "https://id.example.com/").unwrap();
        assert!(Discovery::parse(&body, "https://other").is_err());
        let u = authorize_url(
            &d,
            &Attempt {
                client_id: "cid",
                redirect_uri: "http://127.0.0.1:8787/auth/callback",
                state: "st",
                nonce: "no",
                verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            },
        );
        assert!(u.starts_with("https://id.example.com/auth?response_type=code&client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2Fauth%2Fcallback&scope=openid%20email%20profile&state=st&nonce=no&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"), "{u}");
        let (body, auth) = token_request(&d, "c:id", "s&", "CODE", "http://x/cb", "v");
        assert_eq!(
            body,
            "grant_type=authorization_code&code=CODE&redirect_uri=http%3A%2F%2Fx%2Fcb&code_verifier=v"
        );
        use base64::Engine;
        assert_eq!(
            auth.unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("c%3Aid:s%26")
            )
        );
        let plain = serde_json::json!({"issuer": "http://evil.example", "authorization_endpoint": "http://evil.example/a", "token_endpoint": "http://evil.example/t"}).to_string();
        assert!(Discovery::parse(&plain, "http://evil.example").is_err());
    }

    #[test]
    fn issuer_urls() {
        assert!(check_issuer_url("https://accounts.google.com").is_ok());
        assert!(check_issuer_url("http://127.0.0.1:4000").is_ok());
        assert!(check_issuer_url("http://localhost:4000/oidc").is_ok());
        assert!(check_issuer_url("http://id.example.com").is_err());
        assert!(check_issuer_url("ftp://x").is_err());
    }
}
