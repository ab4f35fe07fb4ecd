//! Project identifiers: what a valid one looks like, checked before it reaches storage or a DO,
//! and the VM API's dependency-builder identities, kept in a namespace no project id can enter.

use sha2::{Digest, Sha256};

/// Every dependency-builder identity (sandbox uid, cgroup, network namespace, directories)
/// starts with this; no project id may, so the two namespaces are disjoint.
pub const BUILDER_PREFIX: &str = "deps-build-";

/// The sandbox identity the clean builds of one install command run as: one per command and
/// cwd, so the frontend's and the backend's builds run side by side.
pub fn builder_id(command: &str, cwd: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"builder\0");
    h.update(command.as_bytes());
    h.update(b"\0");
    h.update(cwd.as_bytes());
    let hex: String = h.finalize()[..5]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{BUILDER_PREFIX}{hex}")
}

/// `{slug}-{rand}`, or `app-{rand}` for an empty slug; a slug in the builders' namespace gets an
/// `app-` in front, so a project named "deps build" still gets a valid id.
pub fn project_id_from(slug: &str, rand: &str) -> String {
    if slug.is_empty() {
        format!("app-{rand}")
    } else if format!("{slug}-").starts_with(BUILDER_PREFIX) {
        format!("app-{slug}-{rand}")
    } else {
        format!("{slug}-{rand}")
    }
}

/// A project id is 1–64 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`,
/// and not starting with [`BUILDER_PREFIX`].
/// It appears in blob names, directory names and preview host names, so it must be safe in all.
pub fn validate_project_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!(
            "project id must be 1 to 64 characters, got {}",
            id.len()
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("project id may contain only a-z, 0-9 and '-'".into());
    }
    if id.starts_with('-') || id.ends_with('-') {
        return Err("project id may not start or end with '-'".into());
    }
    if id.starts_with(BUILDER_PREFIX) {
        return Err(format!(
            "project id may not start with {BUILDER_PREFIX:?} (reserved for the dependency builder)"
        ));
    }
    Ok(())
}

/// `/projects/{id}/rest` → (`id`, `/rest`), with the id validated; `None` for any other path
/// or a bad id.
pub fn split_project_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/projects/")?;
    let (id, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    validate_project_id(id).ok()?;
    Some((id, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_split_into_a_valid_id_and_the_rest() {
        assert_eq!(
            split_project_path("/projects/abc-1/files/a.txt"),
            Some(("abc-1", "/files/a.txt"))
        );
        assert_eq!(split_project_path("/projects/abc"), Some(("abc", "")));
        assert_eq!(split_project_path("/projects/abc/"), Some(("abc", "/")));
        assert_eq!(split_project_path("/projects/"), None);
        assert_eq!(split_project_path("/projects/../etc/passwd"), None);
        assert_eq!(split_project_path("/projects/ABC/ws"), None);
        assert_eq!(split_project_path("/other/abc"), None);
    }

    #[test]
    fn builder_identities_are_never_project_ids() {
        let b = builder_id("npm install", "frontend");
        assert!(b.starts_with(BUILDER_PREFIX) && b.len() == BUILDER_PREFIX.len() + 10);
        assert_eq!(b, builder_id("npm install", "frontend"), "stable");
        assert_ne!(b, builder_id("npm install", "backend"));
        // Well-formed in every other respect, yet refused as a project id.
        assert!(b
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
        assert!(validate_project_id(&b).unwrap_err().contains("reserved"));
        assert!(validate_project_id("deps-build-abcdef12").is_err());
        assert!(split_project_path(&format!("/projects/{b}/exec")).is_none());
        // Near misses stay valid project ids.
        for ok in ["deps-builder-1", "deps-1", "my-deps-build-1", "deps"] {
            assert!(validate_project_id(ok).is_ok(), "{ok}");
        }
        // The Worker's id generator never lands in the reserved namespace.
        for slug in ["deps-build", "deps-build-x", "", "todo"] {
            let id = project_id_from(slug, "0a1b2c3d");
            assert!(validate_project_id(&id).is_ok(), "{slug:?} -> {id}");
        }
        assert_eq!(
            project_id_from("deps-build", "0a1b2c3d"),
            "app-deps-build-0a1b2c3d"
        );
        assert_eq!(project_id_from("todo", "0a1b2c3d"), "todo-0a1b2c3d");
        assert_eq!(project_id_from("", "0a1b2c3d"), "app-0a1b2c3d");
    }

    #[test]
    fn accepts_and_rejects() {
        assert!(validate_project_id("todo-app-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(validate_project_id(bad).is_err(), "{bad:?}");
        }
    }
}
