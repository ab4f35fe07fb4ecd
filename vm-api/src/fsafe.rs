//! Symlink-proof file access inside a project's working copy: every path is walked one
//! component at a time with `openat(O_NOFOLLOW)`, so nothing a sandboxed command plants (a
//! symlink to `/etc`, to another project) can redirect a read, write or delete outside.

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0:?} is a symlink; the VM API never follows symlinks inside a project")]
    Symlink(String),
    #[error("{0:?} is not a directory")]
    NotDir(String),
    #[error("{0:?} is a directory")]
    IsDir(String),
    #[error("{0:?} does not exist")]
    NotFound(String),
    #[error("{path:?}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl FsError {
    pub fn rule(&self) -> &'static str {
        match self {
            FsError::Symlink(_) => "symlink",
            FsError::NotDir(_) => "not_a_directory",
            FsError::IsDir(_) => "is_a_directory",
            FsError::NotFound(_) => "not_found",
            FsError::Io { .. } => "io",
        }
    }
}

fn io(path: &str, e: impl Into<std::io::Error>) -> FsError {
    FsError::Io {
        path: path.to_string(),
        err: e.into(),
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

/// Opens the project root itself (which must not be a symlink).
pub fn open_root(project_dir: &Path) -> Result<OwnedFd, FsError> {
    let shown = project_dir.display().to_string();
    rfs::open(project_dir, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => FsError::Symlink(shown),
        Errno::NOENT => FsError::NotFound(shown),
        Errno::NOTDIR => FsError::NotDir(shown),
        e => io(&shown, e),
    })
}

/// What an entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

pub fn kind_at(dir: &OwnedFd, name: &str) -> Result<Option<(Kind, rfs::Stat)>, FsError> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            let ft = rfs::FileType::from_raw_mode(st.st_mode);
            let k = match ft {
                rfs::FileType::RegularFile => Kind::File,
                rfs::FileType::Directory => Kind::Dir,
                rfs::FileType::Symlink => Kind::Symlink,
                _ => Kind::Other,
            };
            Ok(Some((k, st)))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io(name, e)),
    }
}

/// Opens directory `rel` ("" = root) under `root`, refusing symlinks; creates missing
/// directories when `create` is set.
pub fn open_dir(root: &OwnedFd, rel: &str, create: bool) -> Result<OwnedFd, FsError> {
    let mut dir = rfs::openat(root, ".", DIR_FLAGS, Mode::empty()).map_err(|e| io(".", e))?;
    if rel.is_empty() {
        return Ok(dir);
    }
    let mut walked = String::new();
    for seg in rel.split('/') {
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(seg);
        let next = match rfs::openat(&dir, seg, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(&dir, seg, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io(&walked, e)),
                }
                rfs::openat(&dir, seg, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
                    Errno::LOOP => FsError::Symlink(walked.clone()),
                    e => io(&walked, e),
                })?
            }
            Err(Errno::NOENT) => return Err(FsError::NotFound(walked)),
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return Err(match kind_at(&dir, seg)? {
                    Some((Kind::Symlink, _)) => FsError::Symlink(walked),
                    _ => FsError::NotDir(walked),
                })
            }
            Err(e) => return Err(io(&walked, e)),
        };
        dir = next;
    }
    Ok(dir)
}

fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((p, leaf)) => (p, leaf),
        None => ("", rel),
    }
}

/// Reads a regular file; `Ok(None)` if it is missing, a symlink or not a regular file.
pub fn read_file(root: &OwnedFd, rel: &str) -> Result<Option<Vec<u8>>, FsError> {
    let (parent, leaf) = split_parent(rel);
    let dir = match open_dir(root, parent, false) {
        Ok(d) => d,
        Err(FsError::NotFound(_)) | Err(FsError::NotDir(_)) | Err(FsError::Symlink(_)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let fd = match rfs::openat(
        &dir,
        leaf,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(io(rel, e)),
    };
    let st = rfs::fstat(&fd).map_err(|e| io(rel, e))?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(st.st_size.max(0) as usize);
    std::fs::File::from(fd)
        .read_to_end(&mut buf)
        .map_err(|e| io(rel, e))?;
    Ok(Some(buf))
}

/// Cheap identity of a regular file (size, mtime, inode), to skip re-hashing unchanged files.
pub fn stat_file(root: &OwnedFd, rel: &str) -> Result<Option<(u64, i64, u64)>, FsError> {
    let (parent, leaf) = split_parent(rel);
    let dir = match open_dir(root, parent, false) {
        Ok(d) => d,
        Err(FsError::NotFound(_)) | Err(FsError::NotDir(_)) | Err(FsError::Symlink(_)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(match kind_at(&dir, leaf)? {
        Some((Kind::File, st)) => Some((
            st.st_size as u64,
            st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
            st.st_ino,
        )),
        _ => None,
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `rel` atomically: a temp file in the same directory, then `renameat`.
/// Parent directories are created; a symlink anywhere on the way is refused. An existing
/// symlink at `rel` itself is replaced (rename swaps the link, it never writes through it).
pub fn write_atomic(root: &OwnedFd, rel: &str, data: &[u8]) -> Result<(), FsError> {
    let (parent, leaf) = split_parent(rel);
    let dir = open_dir(root, parent, true)?;
    if let Some((Kind::Dir, _)) = kind_at(&dir, leaf)? {
        return Err(FsError::IsDir(rel.to_string()));
    }
    let tmp = format!(
        ".or-tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let fd = rfs::openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io(rel, e))?;
    let mut f = std::fs::File::from(fd);
    let written = f.write_all(data).and_then(|()| f.flush());
    drop(f);
    if let Err(e) = written {
        let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(io(rel, e));
    }
    if let Err(e) = rfs::renameat(&dir, tmp.as_str(), &dir, leaf) {
        let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(io(rel, e));
    }
    Ok(())
}

/// Removes the file (or symlink) at `rel` without following anything, then prunes parent
/// directories the removal left empty. Missing files are fine.
pub fn remove_file(root: &OwnedFd, rel: &str) -> Result<bool, FsError> {
    let (parent, leaf) = split_parent(rel);
    let dir = match open_dir(root, parent, false) {
        Ok(d) => d,
        // A symlinked parent means the path is not in the project tree: nothing to remove.
        Err(FsError::NotFound(_)) | Err(FsError::NotDir(_)) | Err(FsError::Symlink(_)) => {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    match kind_at(&dir, leaf)? {
        None => return Ok(false),
        Some((Kind::Dir, _)) => return Err(FsError::IsDir(rel.to_string())),
        Some(_) => {}
    }
    rfs::unlinkat(&dir, leaf, AtFlags::empty()).map_err(|e| io(rel, e))?;
    drop(dir);
    let mut p = parent;
    while !p.is_empty() {
        let (pp, name) = split_parent(p);
        let Ok(d) = open_dir(root, pp, false) else {
            break;
        };
        if rfs::unlinkat(&d, name, AtFlags::REMOVEDIR).is_err() {
            break; // not empty (or not ours to remove): stop pruning
        }
        p = pp;
    }
    Ok(true)
}

/// Every regular file under the root (symlinks and special files skipped, never followed),
/// as sorted project-relative paths, at most `limit` of them.
pub fn list_files(root: &OwnedFd, limit: usize) -> Result<(Vec<String>, bool), FsError> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    let mut truncated = false;
    while let Some(rel) = stack.pop() {
        let dir = open_dir(root, &rel, false)?;
        let mut names = Vec::new();
        let mut rd = rfs::Dir::read_from(&dir).map_err(|e| io(&rel, e))?;
        for ent in rd.by_ref() {
            let ent = ent.map_err(|e| io(&rel, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            names.push(name);
        }
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match kind_at(&dir, &name)? {
                Some((Kind::Dir, _)) => stack.push(path),
                Some((Kind::File, _)) => {
                    if out.len() >= limit {
                        truncated = true;
                        break;
                    }
                    out.push(path);
                }
                _ => {}
            }
        }
        if truncated {
            break;
        }
    }
    out.sort();
    Ok((out, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_refuses_symlinked_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = open_root(tmp.path()).unwrap();
        write_atomic(&root, "a/b/c.txt", b"hi").unwrap();
        assert_eq!(read_file(&root, "a/b/c.txt").unwrap().unwrap(), b"hi");
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
        let e = write_atomic(&root, "link/x.txt", b"no").unwrap_err();
        assert_eq!(e.rule(), "symlink", "{e}");
        assert!(!outside.path().join("x.txt").exists());
        assert!(read_file(&root, "link/x.txt").unwrap().is_none());
        // A symlink at the leaf is replaced, never written through.
        std::fs::write(outside.path().join("target"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.path().join("target"), tmp.path().join("leaf")).unwrap();
        assert!(read_file(&root, "leaf").unwrap().is_none());
        write_atomic(&root, "leaf", b"mine").unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("target")).unwrap(),
            b"keep"
        );
        assert_eq!(std::fs::read(tmp.path().join("leaf")).unwrap(), b"mine");
        // Removing prunes empty parents.
        assert!(remove_file(&root, "a/b/c.txt").unwrap());
        assert!(!tmp.path().join("a").exists());
        let (files, truncated) = list_files(&root, 100).unwrap();
        assert_eq!(files, vec!["leaf".to_string()]);
        assert!(!truncated);
    }
}
