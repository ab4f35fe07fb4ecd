//! Admission: the host-wide caps on running sandboxes and dev servers, and the per-user cap on
//! concurrent commands. A [`Slot`] holds its places until it is dropped; a full cap answers
//! `429` with a message that names the cap.

use crate::error::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The caps (`--max-sandboxes`, `--max-dev-servers`, `--max-commands-per-user`).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Sandboxed process trees running at once, all kinds together (commands, terminal
    /// sessions, dev servers).
    pub sandboxes: usize,
    /// Dev servers running at once, all projects together.
    pub dev_servers: usize,
    /// Commands and terminal sessions one user runs at once, all their projects together.
    pub commands_per_user: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            sandboxes: 256,
            dev_servers: 64,
            commands_per_user: 8,
        }
    }
}

/// Commands and terminals running per user.
type UserCounts = Arc<Mutex<HashMap<String, usize>>>;

#[derive(Default)]
pub struct Admission {
    pub caps: Caps,
    sandboxes: Arc<AtomicUsize>,
    dev_servers: Arc<AtomicUsize>,
    users: UserCounts,
}

/// Places taken in the counters; given back on drop.
#[must_use = "a slot frees its places when dropped"]
#[derive(Default)]
pub struct Slot {
    counters: Vec<Arc<AtomicUsize>>,
    user: Option<(UserCounts, String)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        for c in &self.counters {
            c.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some((users, name)) = self.user.take() {
            let mut m = users.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&name);
                }
            }
        }
    }
}

fn full(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
}

/// Takes one place in `c` unless it already holds `cap`.
fn take(c: &Arc<AtomicUsize>, cap: usize) -> bool {
    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n < cap).then_some(n + 1)
    })
    .is_ok()
}

impl Admission {
    pub fn new(caps: Caps) -> Self {
        Admission {
            caps,
            ..Default::default()
        }
    }

    fn sandbox(&self, slot: &mut Slot) -> Result<(), ApiError> {
        if !take(&self.sandboxes, self.caps.sandboxes) {
            return Err(full(
                "host_full",
                format!(
                    "this VM host already runs {} sandboxes, the most it allows \
                     (--max-sandboxes); try again when one has finished",
                    self.caps.sandboxes
                ),
            ));
        }
        slot.counters.push(self.sandboxes.clone());
        Ok(())
    }

    /// A place for one command or terminal session of `user` (`""` when the request named
    /// nobody).
    pub fn command(&self, user: &str) -> Result<Slot, ApiError> {
        let mut slot = Slot::default();
        {
            let mut m = self.users.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(user.to_string()).or_default();
            if *n >= self.caps.commands_per_user {
                let who = if user.is_empty() { "this caller" } else { user };
                return Err(full(
                    "too_many_user_commands",
                    format!(
                        "{who} already runs {} commands or terminals at once, the most one \
                         person may (--max-commands-per-user); wait for one to finish",
                        self.caps.commands_per_user
                    ),
                ));
            }
            *n += 1;
        }
        slot.user = Some((self.users.clone(), user.to_string()));
        self.sandbox(&mut slot)?;
        Ok(slot)
    }

    /// A place for one dev server.
    pub fn dev_server(&self) -> Result<Slot, ApiError> {
        let mut slot = Slot::default();
        if !take(&self.dev_servers, self.caps.dev_servers) {
            return Err(full(
                "too_many_dev_servers",
                format!(
                    "this VM host already runs {} dev servers, the most it allows \
                     (--max-dev-servers); stop one or try again later",
                    self.caps.dev_servers
                ),
            ));
        }
        slot.counters.push(self.dev_servers.clone());
        self.sandbox(&mut slot)?;
        Ok(slot)
    }

    /// (sandboxes, dev servers) running now.
    pub fn running(&self) -> (usize, usize) {
        (
            self.sandboxes.load(Ordering::SeqCst),
            self.dev_servers.load(Ordering::SeqCst),
        )
    }

    /// Commands and terminals `user` runs now.
    pub fn user_commands(&self, user: &str) -> usize {
        self.users
            .lock()
            .map(|m| m.get(user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_give_back() {
        let a = Admission::new(Caps {
            sandboxes: 3,
            dev_servers: 1,
            commands_per_user: 2,
        });
        let c1 = a.command("u1").unwrap();
        let _c2 = a.command("u1").unwrap();
        let e = a.command("u1").err().unwrap();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.message.contains("--max-commands-per-user"), "{e}");
        assert_eq!(a.user_commands("u1"), 2);
        let d = a.dev_server().unwrap();
        let e = a.dev_server().err().unwrap();
        assert_eq!(e.code, "too_many_dev_servers");
        assert_eq!(a.running(), (3, 1));
        // The host is full: another user is refused too, and gets no user place for it.
        let e = a.command("u2").err().unwrap();
        assert_eq!(e.code, "host_full");
        assert_eq!(a.user_commands("u2"), 0);
        drop(c1);
        drop(d);
        assert_eq!(a.running(), (1, 0));
        assert_eq!(a.user_commands("u1"), 1);
        let _u2 = a.command("u2").unwrap();
        let _d = a.dev_server().unwrap();
    }
}
