//! Checkpoint manifests: path → (sha256, size), and the diff between two of them.
//!
//! A checkpoint is a manifest; file contents live once each as content-addressed objects, so a
//! checkpoint costs only its changed files, and VM sync is a diff of manifests.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
}

/// The files of one checkpoint, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, FileEntry>,
}

/// What changed from one manifest to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }
}

impl Manifest {
    pub fn entry(content: &[u8]) -> FileEntry {
        FileEntry {
            sha256: crate::vm_auth::sha256_hex(content),
            size: content.len() as u64,
        }
    }

    /// The manifest of these files (path, content).
    pub fn of(files: &[(&str, &[u8])]) -> Manifest {
        Manifest {
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), Manifest::entry(c)))
                .collect(),
        }
    }

    /// The changes that turn `self` into `to`.
    pub fn diff(&self, to: &Manifest) -> Diff {
        let mut d = Diff::default();
        for (path, e) in &to.files {
            match self.files.get(path) {
                None => d.added.push(path.clone()),
                Some(old) if old.sha256 != e.sha256 => d.modified.push(path.clone()),
                Some(_) => {}
            }
        }
        for path in self.files.keys() {
            if !to.files.contains_key(path) {
                d.deleted.push(path.clone());
            }
        }
        d
    }

    /// Hashes present in `self` that `have` lacks: the objects a sync must fetch.
    pub fn missing_objects<'a>(&'a self, have: &Manifest) -> Vec<&'a str> {
        let known: std::collections::HashSet<&str> =
            have.files.values().map(|e| e.sha256.as_str()).collect();
        let mut out: Vec<&str> = self
            .files
            .values()
            .map(|e| e.sha256.as_str())
            .filter(|h| !known.contains(h))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_add_modify_delete_rename() {
        let a = Manifest::of(&[
            ("keep", b"1"),
            ("change", b"old"),
            ("gone", b"x"),
            ("from", b"moved"),
        ]);
        let b = Manifest::of(&[
            ("keep", b"1"),
            ("change", b"new"),
            ("new", b"y"),
            ("to", b"moved"),
        ]);
        let d = a.diff(&b);
        assert_eq!(d.added, ["new", "to"]);
        assert_eq!(d.modified, ["change"]);
        assert_eq!(d.deleted, ["from", "gone"]);
        assert!(a.diff(&a).is_empty());
        // A rename needs no new object: the content is already known.
        let missing = b.missing_objects(&a);
        assert_eq!(missing.len(), 2);
        assert!(!missing.contains(&Manifest::entry(b"moved").sha256.as_str()));
    }

    #[test]
    fn json_shape() {
        let a = Manifest::of(&[("a.txt", b"hi")]);
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(
            s,
            r#"{"files":{"a.txt":{"sha256":"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4","size":2}}}"#
        );
        assert_eq!(a.total_bytes(), 2);
    }
}
