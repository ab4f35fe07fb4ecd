//! The Worker's per-isolate memory of recent credential checks: which answers of the
//! `Directory` may be reused, for how long, and what forgets them. Without it every API request
//! pays one Durable Object round trip (about 1.5 ms p99 on loopback) before any work starts.
//!
//! Rules: only sessions and personal tokens are remembered, never one-time tickets (the check
//! consumes them) and never an unknown or revoked credential (so a wrong cookie costs a round
//! trip every time, as before). An answer lives [`CHECK_TTL_MS`]. Any change to who may do what
//! made through this isolate (logout, a token deleted, a member invited or removed, a sign-in)
//! forgets everything at once, so the isolate that made a change never serves the old answer;
//! other isolates serve it for at most [`CHECK_TTL_MS`] (`docs/security.md`).

use super::directory::{CheckReply, Credential, DirRequest};
use std::collections::HashMap;

/// How long a remembered answer is used.
pub const CHECK_TTL_MS: u64 = 5_000;
/// At most this many answers are kept; a full cache is emptied (cheap, and rare).
pub const CHECK_CACHE_MAX: usize = 4_096;

#[derive(Debug, Default)]
pub struct CheckCache {
    entries: HashMap<(String, Option<String>), (u64, CheckReply)>,
}

/// The key of a credential that may be remembered: its kind and hash. `None` for tickets.
fn key_of(c: &Credential) -> Option<String> {
    match c {
        Credential::Session(h) => Some(format!("s:{h}")),
        Credential::Token(h) => Some(format!("t:{h}")),
        Credential::Ticket(_) => None,
    }
}

/// Whether `op` may change the answer of any check (then the cache is emptied before it runs:
/// emptied before, so a check racing with it cannot put the old answer back afterwards for
/// longer than one TTL, and the change's own isolate never reads a stale one after it).
pub fn changes_access(op: &DirRequest) -> bool {
    matches!(
        op,
        DirRequest::SignIn { .. }
            | DirRequest::Logout { .. }
            | DirRequest::DeleteToken { .. }
            | DirRequest::Invite { .. }
            | DirRequest::RemoveMember { .. }
            | DirRequest::RemoveProject { .. }
            | DirRequest::ClaimProject { .. }
    )
}

impl CheckCache {
    /// A remembered answer for `credential` on `project`, if it is younger than the TTL.
    pub fn get(
        &mut self,
        credential: &Credential,
        project: Option<&str>,
        now_ms: u64,
    ) -> Option<CheckReply> {
        let k = (key_of(credential)?, project.map(String::from));
        match self.entries.get(&k) {
            Some((at, reply)) if now_ms.saturating_sub(*at) < CHECK_TTL_MS && now_ms >= *at => {
                Some(reply.clone())
            }
            Some(_) => {
                self.entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Remembers the Directory's answer when it names a user (a known, live credential).
    pub fn put(
        &mut self,
        credential: &Credential,
        project: Option<&str>,
        reply: &CheckReply,
        now_ms: u64,
    ) {
        let Some(k) = key_of(credential) else { return };
        if reply.user.is_none() {
            return;
        }
        if self.entries.len() >= CHECK_CACHE_MAX {
            self.entries.clear();
        }
        self.entries
            .insert((k, project.map(String::from)), (now_ms, reply.clone()));
    }

    /// Forgets every answer.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::directory::User;
    use crate::auth::roles::Role;

    fn alice() -> CheckReply {
        CheckReply {
            user: Some(User {
                id: "u-alice".into(),
                name: "Alice".into(),
                email: None,
                login: None,
                provider: "oidc".into(),
            }),
            role: Some(Role::Editor),
        }
    }

    #[test]
    fn sessions_and_tokens_are_remembered_for_the_ttl_only() {
        let mut c = CheckCache::default();
        let s = Credential::Session("h1".into());
        assert_eq!(c.get(&s, Some("p"), 1_000), None);
        c.put(&s, Some("p"), &alice(), 1_000);
        assert_eq!(
            c.get(&s, Some("p"), 1_000 + CHECK_TTL_MS - 1),
            Some(alice())
        );
        // Another project, or none, is another question.
        assert_eq!(c.get(&s, None, 1_001), None);
        assert_eq!(c.get(&s, Some("q"), 1_001), None);
        // A token with the same hash is another credential.
        assert_eq!(
            c.get(&Credential::Token("h1".into()), Some("p"), 1_001),
            None
        );
        assert_eq!(c.get(&s, Some("p"), 1_000 + CHECK_TTL_MS), None);
        assert!(c.is_empty(), "an expired answer is dropped when read");
        // A clock that went backwards does not extend an answer.
        c.put(&s, None, &alice(), 5_000);
        assert_eq!(c.get(&s, None, 4_999), None);
    }

    #[test]
    fn tickets_and_unknown_credentials_are_never_remembered() {
        let mut c = CheckCache::default();
        let t = Credential::Ticket("h".into());
        c.put(&t, Some("p"), &alice(), 0);
        assert!(c.is_empty());
        assert_eq!(c.get(&t, Some("p"), 0), None);
        let revoked = CheckReply {
            user: None,
            role: None,
        };
        c.put(&Credential::Session("x".into()), None, &revoked, 0);
        assert!(c.is_empty());
    }

    #[test]
    fn changes_to_access_forget_and_reads_do_not() {
        let changing = [
            DirRequest::Logout {
                session_hash: "h".into(),
            },
            DirRequest::DeleteToken {
                user_id: "u".into(),
                id: "t".into(),
            },
            DirRequest::RemoveMember {
                project: "p".into(),
                who: "u".into(),
            },
            DirRequest::RemoveProject {
                project: "p".into(),
            },
            DirRequest::Invite {
                project: "p".into(),
                handle: "a@b.c".into(),
                role: Role::Viewer,
            },
        ];
        for op in &changing {
            assert!(changes_access(op), "{op:?}");
        }
        for op in [
            DirRequest::ListTokens {
                user_id: "u".into(),
            },
            DirRequest::Members {
                project: "p".into(),
            },
            DirRequest::ListProjects {
                user_id: "u".into(),
            },
        ] {
            assert!(!changes_access(&op), "{op:?}");
        }
    }

    #[test]
    fn a_full_cache_starts_over() {
        let mut c = CheckCache::default();
        for i in 0..CHECK_CACHE_MAX {
            c.put(&Credential::Session(format!("h{i}")), None, &alice(), 0);
        }
        assert_eq!(c.len(), CHECK_CACHE_MAX);
        c.put(&Credential::Session("one more".into()), None, &alice(), 0);
        assert_eq!(c.len(), 1);
    }
}
