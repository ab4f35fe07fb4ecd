//! The `Directory` Durable Object's wire types: the Worker sends one [`DirRequest`] as JSON in
//! `POST /op` and gets the reply type its doc names (or `{"error": ...}` with a 4xx).
//! Every secret crosses this boundary already hashed (`token::hash`).

use super::roles::Role;
use serde::{Deserialize, Serialize};

/// A person as the Directory knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id: `oidc-…`, `github-…`, `local` or `open`.
    pub id: String,
    pub name: String,
    /// Verified email from the OpenID provider, if any (invitations may name it).
    #[serde(default)]
    pub email: Option<String>,
    /// GitHub login, if signed in with GitHub (invitations may name it).
    #[serde(default)]
    pub login: Option<String>,
    /// `oidc`, `github`, `local` or `open`.
    pub provider: String,
}

/// How the caller proved who they are (each a hash of the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "hash", rename_all = "snake_case")]
pub enum Credential {
    Session(String),
    Token(String),
    /// One-time socket ticket: consumed by the check, valid only for its project.
    Ticket(String),
}

/// A sign-in in flight, stored under the hash of its `state` for at most 10 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// `oidc` or `github`.
    pub provider: String,
    pub verifier: String,
    pub nonce: String,
    /// Where to go after signing in (a same-origin path).
    pub next: String,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    #[serde(default)]
    pub last_used_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectAccess {
    pub project: String,
    pub role: Role,
}

/// A member or a pending invitation of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The user id, or `None` while the invitation waits for its person to sign in.
    pub user_id: Option<String>,
    /// The name shown: the person's name, or the email / GitHub login invited.
    pub name: String,
    /// The email or `@login` the invitation named (for members who joined by sign-in: theirs).
    pub handle: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DirRequest {
    /// → [`CheckReply`]. Who holds `credential`, and their role on `project` if one is named.
    Check {
        credential: Credential,
        project: Option<String>,
        now_ms: u64,
    },
    /// → `{}`. Records (or updates) the user, turns invitations naming their email or login
    /// into memberships, and opens a session.
    SignIn {
        user: User,
        session_hash: String,
        expires_ms: u64,
    },
    /// → `{}`. Revokes a session (logout).
    Logout { session_hash: String },
    /// → `{}`.
    PutLogin {
        state_hash: String,
        login: PendingLogin,
    },
    /// → `Option<PendingLogin>`; a state works once.
    TakeLogin { state_hash: String, now_ms: u64 },
    /// → [`TokenInfo`].
    CreateToken {
        user_id: String,
        hash: String,
        name: String,
        now_ms: u64,
    },
    /// → `Vec<TokenInfo>`.
    ListTokens { user_id: String },
    /// → `{"deleted": bool}`.
    DeleteToken { user_id: String, id: String },
    /// → `{}`. A one-time socket ticket for `project`.
    CreateTicket {
        hash: String,
        user_id: String,
        project: String,
        expires_ms: u64,
    },
    /// → `{"claimed": bool}`: records `user_id` as the owner of a new project id, unless
    /// the id already has one.
    ClaimProject {
        project: String,
        user_id: String,
        now_ms: u64,
    },
    /// → `Vec<ProjectAccess>`: what `user_id` owns or was invited to.
    ListProjects { user_id: String },
    /// → `Vec<Member>` (the owner first).
    Members { project: String },
    /// → [`Member`]: invites `handle` (an email, or `@login` for GitHub) as `role` (viewer or
    /// editor); a person already known joins at once, anyone else when they first sign in.
    Invite {
        project: String,
        handle: String,
        role: Role,
    },
    /// → `{"removed": bool}`: removes a member (by user id) or an invitation (by handle).
    RemoveMember { project: String, who: String },
    /// → `{"removed": bool}`: forgets a deleted project: its owner, members, invitations,
    /// socket tickets and published-app slug (which becomes free).
    RemoveProject { project: String },
    /// → `String`: the published-app slug of `project`. A project that has one keeps it;
    /// otherwise the first of `candidates` nobody holds becomes its slug. `400` when every
    /// candidate is taken.
    ClaimSlug {
        project: String,
        candidates: Vec<String>,
    },
    /// → `Option<String>`: the slug of `project`, if it was ever published.
    SlugOf { project: String },
    /// → `Option<String>`: the project whose slug is `slug`.
    SlugProject { slug: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReply {
    /// `None`: unknown, revoked or expired credential.
    pub user: Option<User>,
    /// `None`: no project named, or the user may not see it.
    pub role: Option<Role>,
}

/// Normalises an invitation handle: emails lower-case, GitHub logins as `@login`.
pub fn normalize_handle(handle: &str) -> Result<String, String> {
    let h = handle.trim();
    if let Some(login) = h.strip_prefix('@') {
        let ok = !login.is_empty()
            && login.len() <= 39
            && login
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        return if ok {
            Ok(format!("@{}", login.to_ascii_lowercase()))
        } else {
            Err(format!("{h:?} is not a GitHub login"))
        };
    }
    let ok = h.len() <= 254
        && h.split_once('@').is_some_and(|(a, d)| {
            !a.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !h.contains(char::is_whitespace);
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(format!(
            "{h:?} is neither an email address nor a GitHub login (@name)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let r = DirRequest::Check {
            credential: Credential::Session("ab".into()),
            project: Some("p-1".into()),
            now_ms: 5,
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"op": "check", "credential": {"kind": "session", "hash": "ab"}, "project": "p-1", "now_ms": 5})
        );
        assert_eq!(serde_json::from_value::<DirRequest>(j).unwrap(), r);
    }

    #[test]
    fn handles() {
        assert_eq!(
            normalize_handle(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert_eq!(normalize_handle("@Octo-Cat").unwrap(), "@octo-cat");
        for bad in [
            "",
            "@",
            "ann",
            "ann@",
            "a b@c.d",
            "@no_underscore",
            "x@.com",
        ] {
            assert!(normalize_handle(bad).is_err(), "{bad}");
        }
    }
}
