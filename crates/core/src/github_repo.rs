//! "Push to GitHub" as pure logic: the route's request and reply, GitHub's documented REST
//! shapes for creating a repository for the signed-in person (`POST /user/repos`), reading
//! one (`GET /repos/{owner}/{repo}`), its error bodies, and the rules for a repository name.
//! (GitHub itself cannot be reached from the test machines: the e2e fake checks these shapes.)

use serde::{Deserialize, Serialize};

pub use crate::auth::github::{API_URL, API_VERSION, USER_AGENT};

/// `Accept` of every REST call.
pub const ACCEPT: &str = "application/vnd.github+json";
/// The user name git sends with a token to GitHub's HTTPS remotes.
pub const TOKEN_USER: &str = "x-access-token";
/// Longest repository name GitHub takes.
pub const MAX_NAME_CHARS: usize = 100;

/// `POST /projects/{id}/git/github`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubPushRequest {
    /// The repository's name (without owner); default: the project's name made into one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// A new repository is private unless this says otherwise.
    #[serde(default = "yes")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Branch to push (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

fn yes() -> bool {
    true
}

/// GitHub's `POST /user/repos` body (the fields this product sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRepo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub private: bool,
    /// Never: the first push brings the history, and an initial commit would reject it.
    pub auto_init: bool,
}

/// The fields of GitHub's repository object this product reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub full_name: String,
    pub html_url: String,
    pub clone_url: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default)]
    pub push: bool,
}

/// `GET /user`'s field this flow needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub login: String,
}

/// The reply of `POST /projects/{id}/git/github`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubPushReply {
    pub repo: Repo,
    /// Whether this call created the repository (else it pushed to the person's existing one).
    pub created: bool,
    pub push: crate::git::PushReply,
}

/// A repository name from a project's name: letters, digits, `.`, `-`, `_`; runs of anything
/// else become one `-`; never empty, `.` or `..`.
pub fn repo_name_from(project_name: &str) -> String {
    let mut out = String::new();
    for c in project_name.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out
        .trim_matches(|c| c == '-' || c == '.')
        .chars()
        .take(MAX_NAME_CHARS)
        .collect();
    if out.is_empty() {
        "open-replit-app".into()
    } else {
        out
    }
}

/// Checks a repository name someone typed.
pub fn validate_repo_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name != "."
        && name != ".."
        && !name.ends_with(".git")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "repository name {name:?} must be 1 to {MAX_NAME_CHARS} of A-Z, a-z, 0-9, '.', '-' \
             and '_' (not \".\", \"..\" or ending in \".git\")"
        ))
    }
}

/// GitHub's error body: `{"message": …, "errors": [{"message"|"code"|"field"…}]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
}

/// Whether a `422` from `POST /user/repos` says the name is taken on the account.
pub fn name_taken(body: &str) -> bool {
    serde_json::from_str::<ApiErrorBody>(body).is_ok_and(|b| {
        b.errors.iter().any(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("already exists"))
                || (e["field"] == "name" && e["code"] == "already_exists")
        })
    })
}

/// What to tell the person about a failed GitHub call: GitHub's own message and details.
pub fn explain(what: &str, status: u16, body: &str) -> String {
    let b: ApiErrorBody = serde_json::from_str(body).unwrap_or_default();
    let mut msg = if b.message.is_empty() {
        body.chars().take(300).collect::<String>()
    } else {
        b.message
    };
    let details: Vec<String> = b
        .errors
        .iter()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect();
    if !details.is_empty() {
        msg = format!("{msg} ({})", details.join("; "));
    }
    let hint = match status {
        401 => ": the GitHub token in your vault was refused; store a valid one",
        403 | 404 => ": the token may lack the `repo` scope (classic) or Administration and Contents write access (fine-grained)",
        _ => "",
    };
    format!("GitHub {what} answered {status}: {msg}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(repo_name_from("My Todo App!"), "My-Todo-App");
        assert_eq!(repo_name_from("  ..  "), "open-replit-app");
        assert_eq!(repo_name_from("ça va"), "a-va");
        assert!(repo_name_from(&"x".repeat(300)).len() <= MAX_NAME_CHARS);
        assert!(validate_repo_name("todo-app_2.0").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x.git", &"y".repeat(101)] {
            assert!(validate_repo_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_defaults_to_private_and_refuses_unknown_keys() {
        let r: GithubPushRequest = serde_json::from_str("{}").unwrap();
        assert!(r.private);
        assert!(serde_json::from_str::<GithubPushRequest>(r#"{"token":"x"}"#).is_err());
    }

    #[test]
    fn github_errors() {
        let taken = r#"{"message":"Repository creation failed.","errors":[{"resource":"Repository","code":"custom","field":"name","message":"name already exists on this account"}],"documentation_url":"https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user","status":"422"}"#;
        assert!(name_taken(taken));
        assert!(!name_taken(
            r#"{"message":"Validation Failed","errors":[{"field":"name","code":"invalid"}]}"#
        ));
        assert!(!name_taken("not json"));
        let e = explain("POST /user/repos", 422, taken);
        assert!(
            e.contains("Repository creation failed. (name already exists on this account)"),
            "{e}"
        );
        assert!(explain("GET /user", 401, r#"{"message":"Bad credentials"}"#).contains("refused"));
        let repo: Repo = serde_json::from_str(r#"{"id":1,"name":"a","full_name":"o/a","private":true,"html_url":"https://github.com/o/a","clone_url":"https://github.com/o/a.git","owner":{"login":"o"},"permissions":{"admin":true,"push":true,"pull":true}}"#).unwrap();
        assert!(repo.permissions.unwrap().push);
    }
}
