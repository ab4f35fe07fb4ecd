//! Worker → VM API request signing: HMAC-SHA256 over method, path, timestamp, body hash and
//! acting user, and the preview tokens; each with its own key derived from the one secret.
//!
//! Both sides use this module, so the canonical string cannot drift between them. The VM API
//! adds what needs state: a replay cache of signatures it has already accepted.
//!
//! The body's hash travels in its own header and is covered by the signature, so the VM API
//! checks the signature before it reads a byte of the body, then checks the body against the
//! hash as it reads it. Request signatures and preview tokens use two keys derived from
//! `VM_API_SECRET` with HKDF-Expand (SHA-256, distinct `info` labels), so neither can ever
//! stand in for the other.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER_TIMESTAMP: &str = "x-or-timestamp";
pub const HEADER_SIGNATURE: &str = "x-or-signature";
/// Lowercase hex SHA-256 of the request body (of the empty string when there is none).
pub const HEADER_BODY_SHA256: &str = "x-or-body-sha256";
/// The person a request acts for (the VM API's per-user caps); signed. Absent means none.
pub const HEADER_USER: &str = "x-or-user";
/// HKDF `info` of the request-signing key.
const INFO_REQUEST: &[u8] = b"open-replit vm-api request signature v1";
/// HKDF `info` of the preview-token key.
const INFO_PREVIEW: &[u8] = b"open-replit vm-api preview token v1";
/// Info of the key that signs a private published app's access tokens (`deploy::record`).
const INFO_APP_ACCESS: &[u8] = b"open-replit app access token v1";
/// How far a request's timestamp may be from the verifier's clock, in seconds.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("timestamp is {0} s away from the server clock (limit {MAX_SKEW_SECS} s)")]
    Expired(i64),
    #[error("signature does not match")]
    BadSignature,
    #[error("signature was already used")]
    Replayed,
    #[error("{HEADER_BODY_SHA256} is not 64 lowercase hex digits")]
    BadBodyHash,
    #[error("{HEADER_USER} must be 1 to 128 printable ASCII characters")]
    BadUser,
    #[error("the body does not match its signed hash")]
    BodyMismatch,
}

/// HKDF-Expand (RFC 5869) of one 32-byte block: `HMAC(secret, info || 0x01)`. The shared secret
/// is already a uniformly random key the operator generated, so it serves as the PRK.
fn derive_key(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(info);
    m.update(&[1]);
    m.finalize().into_bytes().into()
}

/// The key request signatures are made with.
pub fn request_key(secret: &[u8]) -> [u8; 32] {
    derive_key(secret, INFO_REQUEST)
}

/// The key preview tokens are made with.
pub fn preview_key(secret: &[u8]) -> [u8; 32] {
    derive_key(secret, INFO_PREVIEW)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn canonical(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body_sha256: &str,
    user: &str,
) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp,
        body_sha256,
        user
    )
}

fn mac(secret: &[u8], msg: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(msg.as_bytes());
    m
}

/// The signature header value for a request made at `timestamp` (Unix seconds) whose body
/// hashes to `body_sha256` (lowercase hex), acting for `user` (`""` for nobody).
pub fn sign(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body_sha256: &str,
    user: &str,
) -> String {
    hex(&mac(
        &request_key(secret),
        &canonical(method, path_and_query, timestamp, body_sha256, user),
    )
    .finalize()
    .into_bytes())
}

/// Every auth header of a request made at `timestamp` with `body`, acting for `user`.
pub fn request_headers(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
    user: Option<&str>,
) -> Vec<(&'static str, String)> {
    let hash = sha256_hex(body);
    let sig = sign(
        secret,
        method,
        path_and_query,
        timestamp,
        &hash,
        user.unwrap_or(""),
    );
    let mut h = vec![
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, sig),
        (HEADER_BODY_SHA256, hash),
    ];
    if let Some(u) = user {
        h.push((HEADER_USER, u.to_string()));
    }
    h
}

/// The auth headers of one request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body_sha256: Option<&'a str>,
    pub user: Option<&'a str>,
}

fn valid_user(u: &str) -> bool {
    !u.is_empty() && u.len() <= 128 && u.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// Checks freshness and the signature in constant time, from the headers alone (the body is
/// checked against `body_sha256` by whoever reads it). Replay detection is the caller's.
pub fn verify(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    h: SignedHeaders<'_>,
    now: i64,
) -> Result<(), AuthError> {
    let ts = h.timestamp.ok_or(AuthError::Missing(HEADER_TIMESTAMP))?;
    let sig = h.signature.ok_or(AuthError::Missing(HEADER_SIGNATURE))?;
    let body = h
        .body_sha256
        .ok_or(AuthError::Missing(HEADER_BODY_SHA256))?;
    let ts: i64 = ts.trim().parse().map_err(|_| AuthError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > MAX_SKEW_SECS {
        return Err(AuthError::Expired(skew));
    }
    if body.len() != 64
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(AuthError::BadBodyHash);
    }
    if h.user.is_some_and(|u| !valid_user(u)) {
        return Err(AuthError::BadUser);
    }
    let given = decode_hex(sig.trim()).ok_or(AuthError::BadSignature)?;
    mac(
        &request_key(secret),
        &canonical(method, path_and_query, ts, body, h.user.unwrap_or("")),
    )
    .verify_slice(&given)
    .map_err(|_| AuthError::BadSignature)
}

/// Preview tokens valid for longer than this are refused, so a leaked one cannot live forever.
pub const MAX_PREVIEW_TOKEN_SECS: i64 = 7 * 24 * 3600;

fn preview_mac(secret: &[u8], project: &str, expiry: i64) -> String {
    hex(&mac(&preview_key(secret), &format!("{project}:{expiry}"))
        .finalize()
        .into_bytes())
}

/// A preview token: `{expiry}.{hex(HMAC-SHA256(preview_key, "{project_id}:{expiry}"))}`,
/// expiry in Unix seconds. The Worker mints it; the VM API's preview proxy verifies it.
pub fn mint_preview_token(secret: &[u8], project: &str, expiry: i64) -> String {
    format!("{expiry}.{}", preview_mac(secret, project, expiry))
}

/// Checks an `{expiry}.{hex mac}` token whose mac is `HMAC(key, message(expiry))`, at `now`,
/// living at most `max_secs`; the error names the problem.
fn verify_expiring(
    key: &[u8],
    message: impl Fn(i64) -> String,
    token: &str,
    now: i64,
    max_secs: i64,
) -> Result<i64, &'static str> {
    let (exp, sig) = token.split_once('.').ok_or("malformed token")?;
    let expiry: i64 = exp.parse().map_err(|_| "malformed token expiry")?;
    if expiry <= now {
        return Err("token expired");
    }
    if expiry - now > max_secs {
        return Err("token lifetime too long");
    }
    let given = decode_hex(sig).ok_or("bad token signature")?;
    mac(key, &message(expiry))
        .verify_slice(&given)
        .map_err(|_| "bad token signature")?;
    Ok(expiry)
}

/// Checks a token for `project` at time `now`; the error names the problem.
pub fn verify_preview_token(
    secret: &[u8],
    project: &str,
    token: &str,
    now: i64,
) -> Result<i64, &'static str> {
    verify_expiring(
        &preview_key(secret),
        |e| format!("{project}:{e}"),
        token,
        now,
        MAX_PREVIEW_TOKEN_SECS,
    )
}

fn app_mac(secret: &[u8], project: &str, expiry: i64) -> String {
    hex(&mac(
        &derive_key(secret, INFO_APP_ACCESS),
        &format!("app:{project}:{expiry}"),
    )
    .finalize()
    .into_bytes())
}

/// An access token to project `project`'s private published app, minted by the Worker for a
/// signed-in member: `{expiry}.{hex(HMAC-SHA256(app key, "app:{project}:{expiry}"))}`. The
/// app's host turns it into its own cookie. Its key is derived apart from the request and
/// preview keys, so neither a preview token nor a request signature is ever an app token.
pub fn mint_app_token(secret: &[u8], project: &str, expiry: i64) -> String {
    format!("{expiry}.{}", app_mac(secret, project, expiry))
}

/// Checks an app-access token for `project` at `now`; the token may not outlive `max_secs`.
pub fn verify_app_token(
    secret: &[u8],
    project: &str,
    token: &str,
    now: i64,
    max_secs: i64,
) -> Result<i64, &'static str> {
    verify_expiring(
        &derive_key(secret, INFO_APP_ACCESS),
        |e| format!("app:{project}:{e}"),
        token,
        now,
        max_secs,
    )
}

/// Appends a signed `or_nonce` query parameter, so two identical requests in the same second
/// still differ and the VM API's replay cache accepts both.
pub fn with_nonce(path_and_query: &str, nonce: u64) -> String {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{path_and_query}{sep}or_nonce={nonce:016x}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    fn hs<'a>(
        ts: &'a str,
        sig: &'a str,
        body: &'a str,
        user: Option<&'a str>,
    ) -> SignedHeaders<'a> {
        SignedHeaders {
            timestamp: Some(ts),
            signature: Some(sig),
            body_sha256: Some(body),
            user,
        }
    }

    #[test]
    fn round_trip() {
        let h = request_headers(
            SECRET,
            "post",
            "/projects/p1/exec",
            1_000,
            b"{}",
            Some("u1"),
        );
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(HEADER_BODY_SHA256), Some(sha256_hex(b"{}").as_str()));
        let got = SignedHeaders {
            timestamp: get(HEADER_TIMESTAMP),
            signature: get(HEADER_SIGNATURE),
            body_sha256: get(HEADER_BODY_SHA256),
            user: get(HEADER_USER),
        };
        assert_eq!(
            verify(SECRET, "POST", "/projects/p1/exec", got, 1_100),
            Ok(())
        );
        // Without a user there is no user header, and the signature covers its absence.
        let h = request_headers(SECRET, "GET", "/a", 1_000, b"", None);
        assert!(h.iter().all(|(k, _)| *k != HEADER_USER));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let body = sha256_hex(b"body");
        let other = sha256_hex(b"bodx");
        let sig = sign(SECRET, "POST", "/a", 1_000, &body, "u1");
        let v = |m, p, b: &str, u: Option<&str>, s: &[u8]| {
            verify(s, m, p, hs("1000", &sig, b, u), 1_000)
        };
        assert_eq!(v("POST", "/a", &body, Some("u1"), SECRET), Ok(()));
        for (m, p, b, u, key) in [
            ("GET", "/a", &body, Some("u1"), SECRET),
            ("POST", "/b", &body, Some("u1"), SECRET),
            ("POST", "/a", &other, Some("u1"), SECRET),
            ("POST", "/a", &body, Some("u2"), SECRET),
            ("POST", "/a", &body, None, SECRET),
            ("POST", "/a", &body, Some("u1"), b"other".as_slice()),
        ] {
            assert_eq!(
                v(m, p, b, u, key),
                Err(AuthError::BadSignature),
                "{m} {p} {u:?}"
            );
        }
        assert_eq!(
            verify(SECRET, "POST", "/a", hs("1000", "zz", &body, None), 1_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn stale_missing_and_garbled() {
        let e = sha256_hex(b"");
        let sig = sign(SECRET, "GET", "/", 1_000, &e, "");
        let v = |h: SignedHeaders<'_>, now| verify(SECRET, "GET", "/", h, now);
        assert_eq!(
            v(hs("1000", &sig, &e, None), 1_301),
            Err(AuthError::Expired(301))
        );
        assert_eq!(
            v(hs("1000", &sig, &e, None), 699),
            Err(AuthError::Expired(-301))
        );
        let mut h = hs("1000", &sig, &e, None);
        h.timestamp = None;
        assert_eq!(v(h, 1_000), Err(AuthError::Missing(HEADER_TIMESTAMP)));
        let mut h = hs("1000", &sig, &e, None);
        h.signature = None;
        assert_eq!(v(h, 1_000), Err(AuthError::Missing(HEADER_SIGNATURE)));
        let mut h = hs("1000", &sig, &e, None);
        h.body_sha256 = None;
        assert_eq!(v(h, 1_000), Err(AuthError::Missing(HEADER_BODY_SHA256)));
        assert_eq!(
            v(hs("soon", &sig, &e, None), 1_000),
            Err(AuthError::BadTimestamp)
        );
        assert_eq!(
            v(hs("1000", &sig, &e.to_uppercase(), None), 1_000),
            Err(AuthError::BadBodyHash)
        );
        assert_eq!(
            v(hs("1000", &sig, "ab", None), 1_000),
            Err(AuthError::BadBodyHash)
        );
        assert_eq!(
            v(hs("1000", &sig, &e, Some("a b")), 1_000),
            Err(AuthError::BadUser)
        );
        assert_eq!(
            v(hs("1000", &sig, &e, Some("")), 1_000),
            Err(AuthError::BadUser)
        );
    }

    #[test]
    fn signatures_and_preview_tokens_use_separate_keys() {
        assert_ne!(request_key(SECRET), preview_key(SECRET));
        assert_ne!(request_key(SECRET).as_slice(), SECRET);
        // A preview token's MAC is not a request signature over the same text, and a request
        // signature cannot pass as a preview token.
        let token = mint_preview_token(SECRET, "p1", 2_000);
        let mac_part = token.split_once('.').unwrap().1;
        let e = sha256_hex(b"");
        assert_eq!(
            verify(SECRET, "GET", "/", hs("1000", mac_part, &e, None), 1_000),
            Err(AuthError::BadSignature)
        );
        let sig = sign(SECRET, "GET", "/", 1_000, &e, "");
        assert_eq!(
            verify_preview_token(SECRET, "p1", &format!("2000.{sig}"), 1_000),
            Err("bad token signature")
        );
        // The same message under the raw secret (the old single-key scheme) is refused too.
        let raw = hex(&mac(SECRET, "p1:2000").finalize().into_bytes());
        assert_eq!(
            verify_preview_token(SECRET, "p1", &format!("2000.{raw}"), 1_000),
            Err("bad token signature")
        );
    }

    #[test]
    fn preview_tokens() {
        let t = mint_preview_token(SECRET, "p1", 2_000);
        assert_eq!(verify_preview_token(SECRET, "p1", &t, 1_000), Ok(2_000));
        assert_eq!(
            verify_preview_token(SECRET, "p2", &t, 1_000),
            Err("bad token signature")
        );
        assert_eq!(
            verify_preview_token(SECRET, "p1", &t, 2_000),
            Err("token expired")
        );
        assert_eq!(
            verify_preview_token(b"other", "p1", &t, 1_000),
            Err("bad token signature")
        );
        assert_eq!(
            verify_preview_token(SECRET, "p1", "x", 1_000),
            Err("malformed token")
        );
        let far = mint_preview_token(SECRET, "p1", 1_000 + MAX_PREVIEW_TOKEN_SECS + 1);
        assert_eq!(
            verify_preview_token(SECRET, "p1", &far, 1_000),
            Err("token lifetime too long")
        );
        assert_eq!(
            with_nonce("/a?b=1", 255),
            "/a?b=1&or_nonce=00000000000000ff"
        );
        assert_eq!(with_nonce("/a", 1), "/a?or_nonce=0000000000000001");
    }

    #[test]
    fn hex_of_sha256() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn app_tokens_are_bound_to_their_project_and_key() {
        let secret = b"s3cret";
        let t = mint_app_token(secret, "todo-abc", 2000);
        assert_eq!(
            verify_app_token(secret, "todo-abc", &t, 1000, 3600),
            Ok(2000)
        );
        assert!(verify_app_token(secret, "other", &t, 1000, 3600).is_err());
        assert!(verify_app_token(b"other", "todo-abc", &t, 1000, 3600).is_err());
        assert_eq!(
            verify_app_token(secret, "todo-abc", &t, 2000, 3600),
            Err("token expired")
        );
        assert_eq!(
            verify_app_token(secret, "todo-abc", &t, 1000, 10),
            Err("token lifetime too long")
        );
        // A preview token for the same project and expiry is not an app token.
        let p = mint_preview_token(secret, "todo-abc", 2000);
        assert!(verify_app_token(secret, "todo-abc", &p, 1000, 3600).is_err());
    }
}
