//! How a command's changes on the VM land in storage: applied where storage still holds what
//! the VM started from, and saved beside under a conflict name where storage moved meanwhile
//! (an editor save while the command ran). Nothing is lost either way.

use super::project::{Change, Expect};
use crate::manifest::{FileEntry, Manifest};
use crate::vm_api::Changes;
use serde::{Deserialize, Serialize};

/// A path where the VM's version could not simply replace storage's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileConflict {
    pub path: String,
    /// Where the VM's version was saved instead; `None` when there was nothing to save (the
    /// command deleted a file that storage changed, or the VM's file could not be placed).
    pub saved_as: Option<String>,
    /// For a person.
    pub reason: String,
}

/// What to commit for a command's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merge {
    pub changes: Vec<Change>,
    /// What each touched path must still be in storage when the checkpoint is written; a
    /// mismatch means storage moved again, and the merge is redone against the new head.
    pub expect: Vec<Expect>,
    pub conflicts: Vec<FileConflict>,
}

/// Merges `changes`, made on a VM whose working copy was `base`, into storage's `head`.
pub fn merge(base: &Manifest, head: &Manifest, changes: &Changes) -> Merge {
    let mut out = Merge::default();
    // The manifest as the merge leaves it, to keep every path a file or a directory, not both.
    let mut next = head.clone();
    let vm_versions = changes
        .added
        .iter()
        .chain(&changes.modified)
        .map(|f| {
            let e = FileEntry {
                sha256: f.sha256.clone(),
                size: f.size,
            };
            (f.path.as_str(), Some(e))
        })
        .chain(changes.deleted.iter().map(|p| (p.as_str(), None)));
    for (path, vm) in vm_versions {
        let b = base.files.get(path);
        let h = head.files.get(path);
        if h == vm.as_ref() {
            continue; // storage already has exactly this
        }
        if h == b {
            // Storage did not move: the VM's version wins.
            match vm {
                Some(entry) => {
                    if let Some(clash) = clash(&next, path) {
                        out.conflicts.push(FileConflict {
                            path: path.to_string(),
                            saved_as: None,
                            reason: format!(
                                "not saved: it clashes with {clash} in the project (a path cannot be both a file and a folder)"
                            ),
                        });
                        continue;
                    }
                    next.files.insert(path.to_string(), entry.clone());
                    out.changes.push(Change::Stored {
                        path: path.to_string(),
                        entry,
                    });
                }
                None => {
                    next.files.remove(path);
                    out.changes.push(Change::Delete {
                        path: path.to_string(),
                    });
                }
            }
            out.expect.push(Expect {
                path: path.to_string(),
                sha256: h.map(|e| e.sha256.clone()),
            });
            continue;
        }
        // Both sides changed the path: storage keeps its version.
        out.expect.push(Expect {
            path: path.to_string(),
            sha256: h.map(|e| e.sha256.clone()),
        });
        match vm {
            Some(entry) => {
                let saved = conflict_name(path, |p| next.files.contains_key(p));
                if clash(&next, &saved).is_some() {
                    out.conflicts.push(FileConflict {
                        path: path.to_string(),
                        saved_as: None,
                        reason: "changed both by the command and in the project meanwhile; the project's version is kept and the command's could not be placed beside it".into(),
                    });
                    continue;
                }
                next.files.insert(saved.clone(), entry.clone());
                out.expect.push(Expect {
                    path: saved.clone(),
                    sha256: None,
                });
                out.changes.push(Change::Stored {
                    path: saved.clone(),
                    entry,
                });
                out.conflicts.push(FileConflict {
                    path: path.to_string(),
                    saved_as: Some(saved),
                    reason: "changed both by the command and in the project meanwhile; the project's version is kept and the command's is saved beside it".into(),
                });
            }
            None => out.conflicts.push(FileConflict {
                path: path.to_string(),
                saved_as: None,
                reason: "deleted by the command but changed in the project meanwhile; the project's version is kept".into(),
            }),
        }
    }
    out
}

/// `dir/name.vm-conflict.ext` (or `…-2`, `-3`, … when taken): beside the file, keeping its
/// extension so editors still highlight it.
pub fn conflict_name(path: &str, taken: impl Fn(&str) -> bool) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (1..)
        .map(|n| {
            let tag = if n == 1 {
                ".vm-conflict".to_string()
            } else {
                format!(".vm-conflict-{n}")
            };
            format!("{dir}{stem}{tag}{ext}")
        })
        .find(|c| !taken(c))
        .unwrap_or_default()
}

/// A checkpoint summary for a command run outside a turn: `$ ` and the command on one line,
/// capped at 80 characters.
pub fn command_summary(command: &str) -> String {
    let line = command.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        s.push('…');
    }
    format!("$ {s}")
}

/// A path of `m` that stops `path` from being a file: one of its parents is a file, or it is a
/// directory of other files.
fn clash(m: &Manifest, path: &str) -> Option<String> {
    let mut at = path;
    while let Some(i) = at.rfind('/') {
        at = &at[..i];
        if m.files.contains_key(at) {
            return Some(at.to_string());
        }
    }
    let dir = format!("{path}/");
    m.files
        .range(dir.clone()..)
        .next()
        .filter(|(p, _)| p.starts_with(&dir))
        .map(|(p, _)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm_api::ChangedFile;

    fn entry(c: char) -> FileEntry {
        FileEntry {
            sha256: c.to_string().repeat(64),
            size: 1,
        }
    }

    fn manifest(files: &[(&str, char)]) -> Manifest {
        let mut m = Manifest::default();
        for (p, c) in files {
            m.files.insert(p.to_string(), entry(*c));
        }
        m
    }

    fn changed(path: &str, c: char) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            sha256: c.to_string().repeat(64),
            size: 1,
        }
    }

    fn apply(head: &Manifest, m: &Merge) -> Manifest {
        let mut next = head.clone();
        for c in &m.changes {
            match c {
                Change::Stored { path, entry } => {
                    next.files.insert(path.clone(), entry.clone());
                }
                Change::Delete { path } => {
                    next.files.remove(path);
                }
                Change::Write { .. } => unreachable!(),
            }
        }
        next
    }

    #[test]
    fn where_storage_did_not_move_the_vm_wins() {
        let base = manifest(&[("a.txt", 'a'), ("gone.txt", 'g')]);
        let changes = Changes {
            added: vec![changed("notes.txt", 'n')],
            modified: vec![changed("a.txt", 'b')],
            deleted: vec!["gone.txt".into()],
            ..Default::default()
        };
        let m = merge(&base, &base, &changes);
        assert!(m.conflicts.is_empty());
        assert_eq!(
            apply(&base, &m),
            manifest(&[("a.txt", 'b'), ("notes.txt", 'n')])
        );
        assert_eq!(m.expect.len(), 3);
        assert!(m
            .expect
            .iter()
            .any(|x| x.path == "notes.txt" && x.sha256.is_none()));
    }

    #[test]
    fn an_editor_save_during_the_command_is_kept_and_the_vm_version_saved_beside() {
        let base = manifest(&[("src/app.ts", 'a'), ("old.md", 'o')]);
        // The editor saved app.ts and old.md while the command ran.
        let head = manifest(&[("src/app.ts", 'e'), ("old.md", 'x')]);
        let changes = Changes {
            modified: vec![changed("src/app.ts", 'v')],
            deleted: vec!["old.md".into()],
            ..Default::default()
        };
        let m = merge(&base, &head, &changes);
        let next = apply(&head, &m);
        assert_eq!(
            next.files["src/app.ts"],
            entry('e'),
            "storage keeps the editor's"
        );
        assert_eq!(next.files["src/app.vm-conflict.ts"], entry('v'));
        assert_eq!(
            next.files["old.md"],
            entry('x'),
            "a delete never beats an edit"
        );
        assert_eq!(m.conflicts.len(), 2);
        assert_eq!(
            m.conflicts[0].saved_as.as_deref(),
            Some("src/app.vm-conflict.ts")
        );
        assert_eq!(m.conflicts[1].saved_as, None);
    }

    #[test]
    fn the_same_result_on_both_sides_is_no_change_and_no_conflict() {
        let base = manifest(&[("a", 'a')]);
        let head = manifest(&[("a", 'b')]);
        let changes = Changes {
            modified: vec![changed("a", 'b')],
            ..Default::default()
        };
        assert_eq!(merge(&base, &head, &changes), Merge::default());
    }

    #[test]
    fn a_file_where_storage_has_a_directory_is_refused_not_half_saved() {
        let base = manifest(&[("lib/x.py", 'x')]);
        let changes = Changes {
            added: vec![changed("lib", 'l'), changed("lib/x.py/inner", 'i')],
            ..Default::default()
        };
        let m = merge(&base, &base, &changes);
        assert!(m.changes.is_empty());
        assert_eq!(m.conflicts.len(), 2);
        assert!(
            m.conflicts[0].reason.contains("lib/x.py"),
            "{:?}",
            m.conflicts
        );
    }

    #[test]
    fn command_summaries_are_one_capped_line() {
        assert_eq!(
            command_summary("echo hi >\n  notes.txt"),
            "$ echo hi > notes.txt"
        );
        let long = "x".repeat(100);
        assert_eq!(command_summary(&long).chars().count(), 2 + 80 + 1);
    }

    #[test]
    fn conflict_names_keep_the_extension_and_count_up() {
        assert_eq!(conflict_name("a/b.txt", |_| false), "a/b.vm-conflict.txt");
        assert_eq!(conflict_name("Makefile", |_| false), "Makefile.vm-conflict");
        assert_eq!(conflict_name(".env", |_| false), ".env.vm-conflict");
        assert_eq!(
            conflict_name("b.txt", |p| p == "b.vm-conflict.txt"),
            "b.vm-conflict-2.txt"
        );
    }
}
