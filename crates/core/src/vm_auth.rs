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
    fn hex_of_sha256() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
