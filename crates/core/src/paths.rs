//! Project file path validation: one set of rules used by every entry point (HTTP API, agent
//! tools, VM sync). It rejects, never clamps, and each rejection names the rule it broke.

/// Longest path we accept, in bytes (Azure's blob-name limit is 1024 characters).
pub const MAX_PATH_BYTES: usize = 1024;
/// Largest single file, in bytes.
pub const MAX_FILE_BYTES: usize = 5 * 1024 * 1024;
/// Most files one project may hold.
pub const MAX_FILES_PER_PROJECT: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path {0:?} is absolute; use a path relative to the project root")]
    Absolute(String),
    #[error("path {0:?} contains a '..' segment")]
    ParentSegment(String),
    #[error("path {0:?} contains a backslash; use '/' as the separator")]
    Backslash(String),
    #[error("path contains a NUL or control character")]
    ControlChar,
    #[error("path {0:?} is inside .git/, which is managed by the system")]
    GitDir(String),
    #[error("path {0:?} has an empty or '.' segment")]
    EmptySegment(String),
    #[error("path is {0} bytes; the limit is {MAX_PATH_BYTES}")]
    TooLong(usize),
    #[error("file is {0} bytes; the limit is {MAX_FILE_BYTES}")]
    FileTooLarge(usize),
    #[error("project would have {0} files; the limit is {1}")]
    TooManyFiles(usize, usize),
}

impl PathError {
    /// A stable machine-readable name for the rule, for API error codes.
    pub fn rule(&self) -> &'static str {
        match self {
            PathError::Empty => "empty",
            PathError::Absolute(_) => "absolute",
            PathError::ParentSegment(_) => "parent_segment",
            PathError::Backslash(_) => "backslash",
            PathError::ControlChar => "control_char",
            PathError::GitDir(_) => "git_dir",
            PathError::EmptySegment(_) => "empty_segment",
            PathError::TooLong(_) => "too_long",
            PathError::FileTooLarge(_) => "file_too_large",
            PathError::TooManyFiles(..) => "too_many_files",
        }
    }
}

/// Checks a project-relative file path such as `src/App.tsx`.
pub fn validate_path(p: &str) -> Result<(), PathError> {
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    if p.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(p.len()));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(PathError::ControlChar);
    }
    if p.contains('\\') {
        return Err(PathError::Backslash(p.to_string()));
    }
    if p.starts_with('/') || p.as_bytes().get(1) == Some(&b':') {
        return Err(PathError::Absolute(p.to_string()));
    }
    for seg in p.split('/') {
        match seg {
            ".." => return Err(PathError::ParentSegment(p.to_string())),
            "" | "." => return Err(PathError::EmptySegment(p.to_string())),
            _ => {}
        }
    }
    if p == ".git" || p.starts_with(".git/") {
        return Err(PathError::GitDir(p.to_string()));
    }
    Ok(())
}

/// Checks a file's size against the cap.
pub fn validate_size(len: usize) -> Result<(), PathError> {
    if len > MAX_FILE_BYTES {
        return Err(PathError::FileTooLarge(len));
    }
    Ok(())
}

/// Checks a project's file count against the default cap.
pub fn validate_file_count(n: usize) -> Result<(), PathError> {
    validate_file_count_max(n, MAX_FILES_PER_PROJECT)
}

/// Checks a project's file count against a configured cap.
pub fn validate_file_count_max(n: usize, max: usize) -> Result<(), PathError> {
    if n > max {
        return Err(PathError::TooManyFiles(n, max));
    }
    Ok(())
}

/// Decodes `%XX` escapes of a URL path segment into UTF-8 (a `+` stays a `+`).
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape at byte {i} of the path"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "path is not valid UTF-8 once decoded".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths() {
        for p in [
            "a",
            "src/App.tsx",
            "backend/app/main.py",
            "é/ü file.txt",
            "a%20b",
            ".gitignore",
            ".github/x",
        ] {
            assert_eq!(validate_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn each_rule() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("C:/x", "absolute"),
            ("../../etc/passwd", "parent_segment"),
            ("a/../b", "parent_segment"),
            ("a\\b", "backslash"),
            ("a\0b", "control_char"),
            ("a\nb", "control_char"),
            (".git/config", "git_dir"),
            (".git", "git_dir"),
            ("a//b", "empty_segment"),
            ("./a", "empty_segment"),
            ("a/", "empty_segment"),
        ];
        for (p, rule) in cases {
            assert_eq!(validate_path(p).unwrap_err().rule(), *rule, "{p:?}");
        }
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(validate_path(&long).unwrap_err().rule(), "too_long");
        assert_eq!(
            validate_size(MAX_FILE_BYTES + 1).unwrap_err().rule(),
            "file_too_large"
        );
        assert!(validate_size(MAX_FILE_BYTES).is_ok());
        assert_eq!(
            validate_file_count(MAX_FILES_PER_PROJECT + 1)
                .unwrap_err()
                .rule(),
            "too_many_files"
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b/%C3%BC%25+x").unwrap(), "a b/ü%+x");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%ff").is_err());
        assert_eq!(percent_decode("..%2F..%2Fetc").unwrap(), "../../etc");
    }

    #[test]
    fn messages_name_the_rule() {
        let e = validate_path("../x").unwrap_err().to_string();
        assert!(e.contains("'..'"), "{e}");
    }
}
