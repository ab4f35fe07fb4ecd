//! Worker → VM API request signing: HMAC-SHA256 over method, path, timestamp and body hash.
//!
//! Both sides use this module, so the canonical string cannot drift between them. The VM API
//! adds what needs state: a replay cache of signatures it has already accepted.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER_TIMESTAMP: &str = "x-or-timestamp";
pub const HEADER_SIGNATURE: &str = "x-or-signature";
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

fn canonical(method: &str, path_and_query: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp,
        sha256_hex(body)
    )
}

fn mac(secret: &[u8], msg: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(msg.as_bytes());
    m
}

/// The signature header value for a request made at `timestamp` (Unix seconds).
pub fn sign(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    hex(
        &mac(secret, &canonical(method, path_and_query, timestamp, body))
            .finalize()
            .into_bytes(),
    )
}

/// Checks freshness and the signature in constant time. Replay detection is the caller's.
pub fn verify(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), AuthError> {
    let ts = timestamp.ok_or(AuthError::Missing(HEADER_TIMESTAMP))?;
    let sig = signature.ok_or(AuthError::Missing(HEADER_SIGNATURE))?;
    let ts: i64 = ts.trim().parse().map_err(|_| AuthError::BadTimestamp)?;
    let skew = now - ts;
    if skew.abs() > MAX_SKEW_SECS {
        return Err(AuthError::Expired(skew));
    }
    let given = decode_hex(sig.trim()).ok_or(AuthError::BadSignature)?;
    mac(secret, &canonical(method, path_and_query, ts, body))
        .verify_slice(&given)
        .map_err(|_| AuthError::BadSignature)
}

/// Preview tokens valid for longer than this are refused, so a leaked one cannot live forever.
pub const MAX_PREVIEW_TOKEN_SECS: i64 = 7 * 24 * 3600;

fn preview_mac(secret: &[u8], project: &str, expiry: i64) -> String {
    hex(&mac(secret, &format!("{project}:{expiry}"))
        .finalize()
        .into_bytes())
}

/// A preview token: `{expiry}.{hex(HMAC-SHA256(secret, "{project_id}:{expiry}"))}`, expiry in
/// Unix seconds. The Worker mints it; the VM API's preview proxy verifies it.
pub fn mint_preview_token(secret: &[u8], project: &str, expiry: i64) -> String {
    format!("{expiry}.{}", preview_mac(secret, project, expiry))
}

/// Checks a token for `project` at time `now`; the error names the problem.
pub fn verify_preview_token(
    secret: &[u8],
    project: &str,
    token: &str,
    now: i64,
) -> Result<i64, &'static str> {
    let (exp, sig) = token.split_once('.').ok_or("malformed token")?;
    let expiry: i64 = exp.parse().map_err(|_| "malformed token expiry")?;
    if expiry <= now {
        return Err("token expired");
    }
    if expiry - now > MAX_PREVIEW_TOKEN_SECS {
        return Err("token lifetime too long");
    }
    let given = decode_hex(sig).ok_or("bad token signature")?;
    mac(secret, &format!("{project}:{expiry}"))
        .verify_slice(&given)
        .map_err(|_| "bad token signature")?;
    Ok(expiry)
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

    #[test]
    fn round_trip() {
        let sig = sign(SECRET, "post", "/projects/p1/exec", 1_000, b"{}");
        assert_eq!(
            verify(
                SECRET,
                "POST",
                "/projects/p1/exec",
                Some("1000"),
                Some(&sig),
                b"{}",
                1_100
            ),
            Ok(())
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let sig = sign(SECRET, "POST", "/a", 1_000, b"body");
        let v = |m, p, b: &[u8], s: &[u8]| verify(s, m, p, Some("1000"), Some(&sig), b, 1_000);
        assert_eq!(
            v("GET", "/a", b"body", SECRET),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v("POST", "/b", b"body", SECRET),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v("POST", "/a", b"bodx", SECRET),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v("POST", "/a", b"body", b"other"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(
                SECRET,
                "POST",
                "/a",
                Some("1000"),
                Some("zz"),
                b"body",
                1_000
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn stale_missing_and_garbled() {
        let sig = sign(SECRET, "GET", "/", 1_000, b"");
        assert_eq!(
            verify(SECRET, "GET", "/", Some("1000"), Some(&sig), b"", 1_301),
            Err(AuthError::Expired(301))
        );
        assert_eq!(
            verify(SECRET, "GET", "/", Some("1000"), Some(&sig), b"", 699),
            Err(AuthError::Expired(-301))
        );
        assert_eq!(
            verify(SECRET, "GET", "/", None, Some(&sig), b"", 1_000),
            Err(AuthError::Missing(HEADER_TIMESTAMP))
        );
        assert_eq!(
            verify(SECRET, "GET", "/", Some("1000"), None, b"", 1_000),
            Err(AuthError::Missing(HEADER_SIGNATURE))
        );
        assert_eq!(
            verify(SECRET, "GET", "/", Some("soon"), Some(&sig), b"", 1_000),
            Err(AuthError::BadTimestamp)
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
}
