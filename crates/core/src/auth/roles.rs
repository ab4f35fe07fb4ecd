//! Roles on a project and what each may do. The Worker's gate and the `ProjectRoom` both ask
//! [`Role::may`]; [`action_for`] says what a per-project request does.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the event stream and the files; nothing else.
    Viewer,
    /// Everything a person does to build the app: write, run, chat, restore, preview.
    Editor,
    /// An editor who also shares the project (invites, removes members).
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn may(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Write | Action::Run | Action::Chat | Action::Preview | Action::Publish => {
                self >= Role::Editor
            }
            Action::Share | Action::Delete => self == Role::Owner,
        }
    }
}

/// What a request does to a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read files, checkpoints, diffs, the export, the event stream.
    Read,
    /// Save, delete, restore.
    Write,
    /// Commands: the one-shot terminal, the interactive shell, saving what they changed.
    Run,
    /// Start or stop agent turns.
    Chat,
    /// Start, restart or stop dev servers, or mint a preview link (which runs the app).
    Preview,
    /// Publish, roll back, unpublish, or change who may open the published app.
    Publish,
    /// Invite or remove members.
    Share,
    /// Delete the project for good.
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Run => "run",
            Action::Chat => "chat",
            Action::Preview => "preview",
            Action::Publish => "publish",
            Action::Share => "share",
            Action::Delete => "delete",
        }
    }
}

/// The action of a per-project request: `method` and the path after `/projects/{id}`.
/// Anything not known to be a read is treated as a write, so a new route is closed to viewers
/// until it is listed here.
pub fn action_for(method: &str, rest: &str) -> Action {
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    let get = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    if method.eq_ignore_ascii_case("DELETE") && rest.trim_matches('/').is_empty() {
        return Action::Delete;
    }
    match (get, first) {
        (_, "pty") | (_, "terminal") | (_, "changes") => Action::Run,
        (_, "preview") => Action::Preview,
        (_, "members") if !get => Action::Share,
        (_, "deployments") | (_, "deploy") if !get => Action::Publish,
        // Forking copies the files into a new project of the caller's: reading, for the source.
        (false, "fork") if rest.trim_matches('/') == "fork" => Action::Read,
        // Cloning is reading: the fetch negotiation is a POST.
        (_, "git") if rest.ends_with("/git-upload-pack") || get => Action::Read,
        (
            true,
            "" | "ws" | "files" | "checkpoints" | "export.zip" | "members" | "deployments"
            | "deploy" | "site",
        ) => Action::Read,
        _ => Action::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_reads_only() {
        for (m, r) in [
            ("GET", ""),
            ("GET", "/ws"),
            ("GET", "/files"),
            ("GET", "/files/src/a.ts"),
            ("GET", "/checkpoints"),
            ("GET", "/checkpoints/3/diff"),
            ("GET", "/export.zip"),
            ("GET", "/members"),
            ("GET", "/deployments"),
            ("GET", "/deployments/d-2/logs"),
            ("GET", "/deployments/open"),
            ("GET", "/site"),
            ("GET", "/deploy"),
            ("GET", "/git/info/refs"),
            ("POST", "/git/git-upload-pack"),
            ("POST", "/fork"),
        ] {
            assert_eq!(action_for(m, r), Action::Read, "{m} {r}");
            assert!(Role::Viewer.may(action_for(m, r)));
        }
        for (m, r, a) in [
            ("PUT", "/files/a", Action::Write),
            ("DELETE", "/files/a", Action::Write),
            ("POST", "/checkpoints/3/restore", Action::Write),
            ("POST", "/terminal", Action::Run),
            ("GET", "/pty", Action::Run),
            ("GET", "/preview", Action::Preview),
            ("POST", "/preview/start", Action::Preview),
            ("POST", "/preview/stop", Action::Preview),
            ("POST", "/members", Action::Share),
            ("DELETE", "/members/bob", Action::Share),
            ("DELETE", "", Action::Delete),
            ("PATCH", "", Action::Write),
            ("POST", "/fork/x", Action::Write),
            ("DELETE", "/", Action::Delete),
            ("POST", "/something-new", Action::Write),
            ("POST", "/deployments", Action::Publish),
            ("POST", "/deployments/d-1/rollback", Action::Publish),
            ("PUT", "/deployments/visibility", Action::Publish),
            ("DELETE", "/deployments/live", Action::Publish),
            ("POST", "/git/git-receive-pack", Action::Write),
            ("POST", "/deploy", Action::Publish),
            ("POST", "/git/github", Action::Write),
            ("GET", "/secrets", Action::Write),
            ("PUT", "/secrets/API_KEY", Action::Write),
        ] {
            assert_eq!(action_for(m, r), a, "{m} {r}");
            assert!(!Role::Viewer.may(a), "{m} {r}");
        }
    }

    #[test]
    fn editors_build_owners_share() {
        assert!(Role::Editor.may(Action::Chat));
        assert!(Role::Editor.may(Action::Run));
        assert!(!Role::Editor.may(Action::Share));
        assert!(Role::Editor.may(Action::Publish));
        assert!(Role::Owner.may(Action::Share));
        assert!(Role::Owner.may(Action::Delete));
        assert!(!Role::Editor.may(Action::Delete));
        assert!(!Role::Viewer.may(Action::Chat));
        assert_eq!(Role::parse("editor"), Some(Role::Editor));
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(serde_json::to_string(&Role::Viewer).unwrap(), "\"viewer\"");
    }
}
