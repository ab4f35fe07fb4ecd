//! Accounts: who is calling and what they may do. Pure logic for the Worker's gate
//! (`src/auth.rs`) and the `Directory` Durable Object (`src/directory.rs`): secret tokens and
//! their hashes, cookies, the auth mode, OpenID Connect and GitHub sign-in as data, roles, and
//! the Directory's wire types.

pub mod check_cache;
pub mod cookie;
pub mod directory;
pub mod github;
pub mod mode;
pub mod oidc;
pub mod roles;
pub mod token;

/// The header the Worker sets on every per-project request with the caller's stable user id
/// (any value a client sent is removed first).
pub const USER_HEADER: &str = "x-or-user";
/// The header with the caller's role on the project: `owner`, `editor` or `viewer`.
pub const ROLE_HEADER: &str = "x-or-role";
/// The user id of the one person of local mode (`make dev` without an identity provider).
pub const LOCAL_USER: &str = "local";
/// The user id every caller shares in open mode (`AUTH_MODE=open`).
pub const OPEN_USER: &str = "open";

/// `application/x-www-form-urlencoded` encoding of one value (RFC 3986 unreserved kept).
pub fn form_encode(v: &str) -> String {
    crate::azure::url::encode_query_value(v)
}

/// `k=v&k=v` with every value form-encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encodes_reserved_characters() {
        assert_eq!(
            super::form(&[("redirect_uri", "http://a/b?c=d e"), ("x", "1")]),
            "redirect_uri=http%3A%2F%2Fa%2Fb%3Fc%3Dd%20e&x=1"
        );
    }
}
