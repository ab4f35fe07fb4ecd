//! The secrets vault as pure logic: AES-256-GCM sealing under the operator's
//! `KEY_ENCRYPTION_SECRET` (shared with the BYOK key), the names a secret may have, a person's
//! deploy credentials (GitHub, Modal, Netlify) and a project's runtime secrets (environment
//! variables its dev servers and deployed backend read), what the browser may see of them
//! (names and times, never values), and [`SecretEnv`], an environment whose values never
//! reach a `Debug` print.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;

/// Most secrets one person's vault, or one project, may hold.
pub const MAX_SECRETS: usize = 64;
/// Largest secret value in bytes.
pub const MAX_SECRET_BYTES: usize = 8 * 1024;
/// Longest secret name.
pub const MAX_NAME_CHARS: usize = 64;

/// The deploy credentials a person's vault knows, by the environment name their tool reads.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
pub const MODAL_TOKEN_ID: &str = "MODAL_TOKEN_ID";
pub const MODAL_TOKEN_SECRET: &str = "MODAL_TOKEN_SECRET";
pub const NETLIFY_AUTH_TOKEN: &str = "NETLIFY_AUTH_TOKEN";

/// A known deploy credential: its name, what it is, and what uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub name: &'static str,
    pub label: &'static str,
    pub used_by: &'static str,
}

/// Every deploy credential the vault accepts (a person's vault holds nothing else).
pub const CREDENTIALS: &[Credential] = &[
    Credential {
        name: GITHUB_TOKEN,
        label: "GitHub token (repo scope)",
        used_by: "push to GitHub",
    },
    Credential {
        name: MODAL_TOKEN_ID,
        label: "Modal token id",
        used_by: "deploy the backend to Modal",
    },
    Credential {
        name: MODAL_TOKEN_SECRET,
        label: "Modal token secret",
        used_by: "deploy the backend to Modal",
    },
    Credential {
        name: NETLIFY_AUTH_TOKEN,
        label: "Netlify personal access token",
        used_by: "deploy the frontend to Netlify",
    },
];

/// Names the platform sets itself for an app's processes: a runtime secret may not shadow them.
pub const RESERVED_RUNTIME_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "TERM",
    "TMPDIR",
    "PORT",
    "BACKEND_PORT",
    "DATABASE_PATH",
    "PWD",
    "SHELL",
    "USER",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "NODE_OPTIONS",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("KEY_ENCRYPTION_SECRET is not set, so secrets cannot be stored")]
    NoSecret,
    #[error("the stored secret cannot be opened (KEY_ENCRYPTION_SECRET changed?); store it again")]
    Open,
    #[error("{0}")]
    Bad(String),
}

/// A value as stored: AES-256-GCM ciphertext bound (as associated data) to who and what it is
/// for, so a record copied to another person, project or name does not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Base64 of the 12-byte nonce.
    pub nonce: String,
    /// Base64 of the ciphertext and tag.
    pub ciphertext: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The AES key: HMAC-SHA256 of a fixed label under the operator's secret, so the secret
/// itself is never the cipher key and can be any length.
fn cipher(secret: &str) -> Result<Aes256Gcm, SealError> {
    if secret.trim().len() < 16 {
        return Err(SealError::NoSecret);
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|_| SealError::NoSecret)?;
    mac.update(b"open-replit byok key v1");
    let key = mac.finalize().into_bytes();
    Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::NoSecret)
}

/// Seals `plain` under the operator's `secret`, bound to `aad`, with a fresh random `nonce`.
pub fn seal(secret: &str, aad: &str, plain: &[u8], nonce: [u8; 12]) -> Result<Sealed, SealError> {
    let ct = cipher(secret)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)?;
    Ok(Sealed {
        nonce: b64().encode(nonce),
        ciphertext: b64().encode(ct),
    })
}

/// Opens what [`seal`] sealed; fails for another `aad`, a changed secret or tampering.
pub fn open(secret: &str, aad: &str, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    let nonce = b64().decode(&sealed.nonce).map_err(|_| SealError::Open)?;
    let ct = b64()
        .decode(&sealed.ciphertext)
        .map_err(|_| SealError::Open)?;
    if nonce.len() != 12 {
        return Err(SealError::Open);
    }
    cipher(secret)?
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)
}

/// What a secret is bound to: a person's deploy credential or a project's runtime secret. NUL
/// separates the parts, which no user id, project id or name contains.
pub fn aad(scope: Scope, owner: &str, name: &str) -> String {
    let kind = match scope {
        Scope::Person => "vault-person",
        Scope::Project => "vault-project",
    };
    format!("{kind}\0{owner}\0{name}")
}

/// Whose secret it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A person's deploy credentials, by user id.
    Person,
    /// A project's runtime secrets, by project id.
    Project,
}

/// Checks a secret's name: `[A-Z_][A-Z0-9_]*`, 1 to 64 characters (an environment variable
/// any shell and any language can read). A person's vault accepts only [`CREDENTIALS`]; a
/// project's runtime secrets may not shadow [`RESERVED_RUNTIME_NAMES`].
pub fn validate_name(scope: Scope, name: &str) -> Result<(), SealError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(SealError::Bad(format!(
            "secret name {name:?} must be 1 to {MAX_NAME_CHARS} of A-Z, 0-9 and _, not starting \
             with a digit"
        )));
    }
    match scope {
        Scope::Person if !CREDENTIALS.iter().any(|c| c.name == name) => {
            Err(SealError::Bad(format!(
                "{name} is not a deploy credential this product uses; choose one of {}",
                CREDENTIALS
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Scope::Project if RESERVED_RUNTIME_NAMES.contains(&name) => Err(SealError::Bad(format!(
            "{name} is set by the platform for the app's processes; choose another name"
        ))),
        _ => Ok(()),
    }
}

/// Checks a value: 1 to [`MAX_SECRET_BYTES`] bytes, no NUL (environment values cannot hold one).
pub fn validate_value(value: &str) -> Result<(), SealError> {
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(SealError::Bad(format!(
            "a secret's value must be 1 to {MAX_SECRET_BYTES} bytes, got {}",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(SealError::Bad(
            "a secret's value cannot contain a NUL byte".into(),
        ));
    }
    Ok(())
}

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub sealed: Sealed,
    pub updated_ms: u64,
    /// The last four characters of values of 16 characters or more (tokens), else `None`:
    /// enough to tell which token is stored, too little to matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
}

impl StoredSecret {
    /// Validates and seals `value` as `name` for `owner`.
    pub fn new(
        secret: &str,
        scope: Scope,
        owner: &str,
        name: &str,
        value: &str,
        nonce: [u8; 12],
        now_ms: u64,
    ) -> Result<StoredSecret, SealError> {
        validate_name(scope, name)?;
        validate_value(value)?;
        let sealed = seal(secret, &aad(scope, owner, name), value.as_bytes(), nonce)?;
        let n = value.chars().count();
        let last4 = (n >= 16).then(|| value.chars().skip(n - 4).collect());
        Ok(StoredSecret {
            sealed,
            updated_ms: now_ms,
            last4,
        })
    }

    /// The value, for the one command or request that needs it.
    pub fn open(
        &self,
        secret: &str,
        scope: Scope,
        owner: &str,
        name: &str,
    ) -> Result<String, SealError> {
        let plain = open(secret, &aad(scope, owner, name), &self.sealed)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

/// What the browser sees of one secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last4: Option<String>,
}

/// `GET /api/vault` and `GET /projects/{id}/secrets` (and the answer of a change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    pub secrets: Vec<SecretInfo>,
    /// The names a person's vault accepts (empty for a project's runtime secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<KnownCredential>,
}

/// A deploy credential as the settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownCredential {
    pub name: String,
    pub label: String,
    pub used_by: String,
}

/// `PUT /api/vault/{NAME}` and `PUT /projects/{id}/secrets/{NAME}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { value: <redacted> }")
    }
}

/// The list the browser sees for `scope`, from stored records by name.
pub fn list<'a>(
    scope: Scope,
    stored: impl IntoIterator<Item = (&'a str, &'a StoredSecret)>,
) -> SecretList {
    let mut secrets: Vec<SecretInfo> = stored
        .into_iter()
        .map(|(name, s)| SecretInfo {
            name: name.to_string(),
            updated_ms: s.updated_ms,
            last4: s.last4.clone(),
        })
        .collect();
    secrets.sort_by(|a, b| a.name.cmp(&b.name));
    let known = match scope {
        Scope::Person => CREDENTIALS
            .iter()
            .map(|c| KnownCredential {
                name: c.name.into(),
                label: c.label.into(),
                used_by: c.used_by.into(),
            })
            .collect(),
        Scope::Project => vec![],
    };
    SecretList { secrets, known }
}

/// An environment that carries secret values: serialises as a plain map (the wire format of
/// every `env`), prints only its names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretEnv(pub BTreeMap<String, String>);

impl SecretEnv {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every value, for scrubbing text that may echo one (a tool's error output).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    /// `text` with every value of 4 characters or more replaced by `<secret>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values().filter(|v| v.len() >= 4) {
            out = out.replace(v, "<secret>");
        }
        out
    }
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-operator-secret-of-enough-length";

    #[test]
    fn sealed_values_open_only_for_their_owner_and_name() {
        let s = StoredSecret::new(
            SECRET,
            Scope::Project,
            "p1",
            "STRIPE_KEY",
            "sk_live_0123456789abcdef",
            [7; 12],
            5,
        )
        .unwrap();
        assert!(!s.sealed.ciphertext.contains("sk_live"));
        assert_eq!(s.last4.as_deref(), Some("cdef"));
        assert_eq!(
            s.open(SECRET, Scope::Project, "p1", "STRIPE_KEY").unwrap(),
            "sk_live_0123456789abcdef"
        );
        assert_eq!(
            s.open(SECRET, Scope::Project, "p2", "STRIPE_KEY"),
            Err(SealError::Open)
        );
        assert_eq!(
            s.open(SECRET, Scope::Project, "p1", "OTHER"),
            Err(SealError::Open)
        );
        assert_eq!(
            s.open(SECRET, Scope::Person, "p1", "STRIPE_KEY"),
            Err(SealError::Open)
        );
        assert_eq!(
            s.open(
                "another-operator-secret-here",
                Scope::Project,
                "p1",
                "STRIPE_KEY"
            ),
            Err(SealError::Open)
        );
    }

    #[test]
    fn short_values_show_no_last4_and_no_secret_refuses() {
        let s = StoredSecret::new(SECRET, Scope::Project, "p", "PIN", "1234", [1; 12], 0).unwrap();
        assert_eq!(s.last4, None);
        assert_eq!(
            StoredSecret::new("short", Scope::Project, "p", "PIN", "1234", [1; 12], 0),
            Err(SealError::NoSecret)
        );
    }

    #[test]
    fn names_and_values_are_checked() {
        assert!(validate_name(Scope::Project, "API_KEY_2").is_ok());
        for bad in ["", "api_key", "2KEY", "A-B", "A B", &"A".repeat(65)] {
            assert!(validate_name(Scope::Project, bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(Scope::Project, "PATH").is_err());
        assert!(validate_name(Scope::Project, "DATABASE_PATH").is_err());
        assert!(validate_name(Scope::Person, GITHUB_TOKEN).is_ok());
        assert!(validate_name(Scope::Person, "STRIPE_KEY").is_err());
        assert!(validate_value("").is_err());
        assert!(validate_value("a\0b").is_err());
        assert!(validate_value(&"x".repeat(MAX_SECRET_BYTES + 1)).is_err());
        assert!(validate_value(&"x".repeat(MAX_SECRET_BYTES)).is_ok());
    }

    #[test]
    fn lists_show_names_never_values() {
        let a = StoredSecret::new(
            SECRET,
            Scope::Person,
            "u",
            GITHUB_TOKEN,
            "ghp_abcdefghijklmnop1234",
            [2; 12],
            9,
        )
        .unwrap();
        let l = list(Scope::Person, [(GITHUB_TOKEN, &a)]);
        let json = serde_json::to_string(&l).unwrap();
        assert!(!json.contains("ghp_"));
        assert!(json.contains("\"last4\":\"1234\""));
        assert_eq!(l.known.len(), CREDENTIALS.len());
        assert!(list(Scope::Project, []).known.is_empty());
    }

    #[test]
    fn secret_env_prints_names_only_and_scrubs() {
        let mut m = BTreeMap::new();
        m.insert("TOKEN".to_string(), "canary-value-42".to_string());
        let e = SecretEnv(m);
        assert_eq!(format!("{e:?}"), "{\"TOKEN\"}");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"TOKEN":"canary-value-42"}"#
        );
        assert_eq!(
            e.scrub("auth canary-value-42 failed"),
            "auth <secret> failed"
        );
        assert_eq!(
            format!("{:?}", PutSecret { value: "v".into() }),
            "PutSecret { value: <redacted> }"
        );
    }
}
