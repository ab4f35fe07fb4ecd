//! Project identifiers: what a valid one looks like, checked before it reaches storage or a DO.

/// A project id is 1–64 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
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
    fn accepts_and_rejects() {
        assert!(validate_project_id("todo-app-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(validate_project_id(bad).is_err(), "{bad:?}");
        }
    }
}
