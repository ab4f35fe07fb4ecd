//! Secret tokens (sessions, personal API tokens, socket tickets, sign-in states): random bytes
//! shown once to their holder, and only their sha256 kept at rest, so a leaked Directory
//! holds nothing that signs anyone in.

use base64::Engine;
use sha2::{Digest, Sha256};

/// What a secret is for; its prefix makes a leaked token recognisable (and greppable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A browser session (the cookie's value).
    Session,
    /// A personal API token (`Authorization: Bearer`).
    Personal,
    /// A one-time WebSocket ticket (`?ticket=`).
    Ticket,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Session => "ors_",
            Kind::Personal => "orp_",
            Kind::Ticket => "ort_",
        }
    }
}

/// A new secret from 32 random bytes: the prefix and 43 characters of URL-safe base64.
pub fn encode(kind: Kind, random: &[u8; 32]) -> String {
    format!(
        "{}{}",
        kind.prefix(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    )
}

/// The password of an `Authorization: Basic …` value (git and other HTTP clients send a
/// personal token that way), if the value is Basic auth at all.
pub fn basic_password(value: &str) -> Option<String> {
    use base64::Engine;
    let b = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b.trim())
        .ok()?;
    let pair = String::from_utf8(raw).ok()?;
    pair.split_once(':').map(|(_, p)| p.trim().to_string())
}

/// Whether `s` has the shape of a secret of `kind` (cheap refusal before any lookup).
pub fn looks_like(kind: Kind, s: &str) -> bool {
    s.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The form a secret is stored in: lower-case hex sha256 of the whole token. The tokens carry
/// 256 random bits, so a fast hash is enough (no password stretching needed).
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URL-safe base64 without padding (PKCE verifiers, states).
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_prefix_and_hash_stably() {
        let t = encode(Kind::Personal, &[7u8; 32]);
        assert!(t.starts_with("orp_"));
        assert!(looks_like(Kind::Personal, &t));
        assert!(!looks_like(Kind::Session, &t));
        assert!(!looks_like(Kind::Personal, "orp_short"));
        assert!(!looks_like(Kind::Personal, &format!("{t}!")));
        assert_eq!(hash(&t), hash(&t));
        assert_eq!(hash(&t).len(), 64);
        assert_ne!(hash(&t), hash(&encode(Kind::Personal, &[8u8; 32])));
        // Known vector: sha256("abc").
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn basic_auth_gives_its_password() {
        // "git:orp_abc" in base64.
        assert_eq!(
            basic_password("Basic Z2l0Om9ycF9hYmM=").as_deref(),
            Some("orp_abc")
        );
        assert_eq!(basic_password("Bearer x"), None);
        assert_eq!(basic_password("Basic !!!"), None);
    }
}
