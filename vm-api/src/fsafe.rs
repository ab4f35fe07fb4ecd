//! Symlink-proof file access inside a project's working copy: every path is walked one
//! component at a time with `openat(O_NOFOLLOW)`, so nothing a sandboxed command plants (a
//! symlink to `/etc`, to another project) can redirect a read, write or delete outside.

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{CStr, CString};
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
    #[error("{path:?} is larger than {max} bytes")]
    TooLarge { path: String, max: usize },
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
            FsError::TooLarge { .. } => "file_too_large",
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

/// The directory holding `rel` and `rel`'s last component; `None` when a parent is missing,
/// not a directory, or a symlink.
fn open_parent<'a>(root: &OwnedFd, rel: &'a str) -> Result<Option<(OwnedFd, &'a str)>, FsError> {
    let (parent, leaf) = split_parent(rel);
    match open_dir(root, parent, false) {
        Ok(d) => Ok(Some((d, leaf))),
        Err(FsError::NotFound(_)) | Err(FsError::NotDir(_)) | Err(FsError::Symlink(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a regular file; `Ok(None)` if it is missing, a symlink or not a regular file.
pub fn read_file(root: &OwnedFd, rel: &str) -> Result<Option<Vec<u8>>, FsError> {
    read_file_max(root, rel, usize::MAX)
}

/// Like [`read_file`], but never reads more than `max` bytes: a file that is (or grew) larger
/// is [`FsError::TooLarge`], whatever its size said when it was listed.
pub fn read_file_max(root: &OwnedFd, rel: &str, max: usize) -> Result<Option<Vec<u8>>, FsError> {
    let Some((dir, leaf)) = open_parent(root, rel)? else {
        return Ok(None);
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
    let too_large = || FsError::TooLarge {
        path: rel.to_string(),
        max,
    };
    if st.st_size.max(0) as u64 > max as u64 {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(st.st_size.max(0) as usize);
    std::fs::File::from(fd)
        .take((max as u64).saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io(rel, e))?;
    if buf.len() > max {
        return Err(too_large());
    }
    Ok(Some(buf))
}

/// Cheap identity of a regular file (size, mtime, inode), to skip re-hashing unchanged files.
pub fn stat_file(root: &OwnedFd, rel: &str) -> Result<Option<(u64, i64, u64)>, FsError> {
    let Some((dir, leaf)) = open_parent(root, rel)? else {
        return Ok(None);
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

/// Deepest directory tree [`make_way`] removes (each level holds one descriptor).
const MAX_REMOVE_DEPTH: usize = 256;

/// Makes room for a regular file at `rel`: every parent component that is not a directory (a
/// file, a symlink, a socket…) is unlinked, never followed, and replaced by a directory; a
/// directory at `rel` itself is removed with everything under it (fd-relative, no symlink
/// followed, nothing outside the project reached). A symlink or special file at `rel` is left
/// for [`write_atomic`]'s rename to replace. `before_remove` sees each entry (path, kind) just
/// before it goes, so the caller can tell what was there. Returns the regular files, symlinks
/// and special files removed.
pub fn make_way(
    root: &OwnedFd,
    rel: &str,
    before_remove: &mut dyn FnMut(&str, Kind),
) -> Result<u64, FsError> {
    let (parent, leaf) = split_parent(rel);
    let mut dir = rfs::openat(root, ".", DIR_FLAGS, Mode::empty()).map_err(|e| io(".", e))?;
    let mut walked = String::new();
    let mut removed = 0u64;
    if !parent.is_empty() {
        for seg in parent.split('/') {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(seg);
            match kind_at(&dir, seg)? {
                None | Some((Kind::Dir, _)) => {}
                Some((k, _)) => {
                    before_remove(&walked, k);
                    match rfs::unlinkat(&dir, seg, AtFlags::empty()) {
                        Ok(()) => removed += 1,
                        Err(Errno::NOENT) => {}
                        Err(e) => return Err(io(&walked, e)),
                    }
                }
            }
            match rfs::mkdirat(&dir, seg, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io(&walked, e)),
            }
            dir = rfs::openat(&dir, seg, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
                // Swapped again meanwhile (a running command): the caller tries again.
                Errno::LOOP => FsError::Symlink(walked.clone()),
                Errno::NOTDIR => FsError::NotDir(walked.clone()),
                e => io(&walked, e),
            })?;
        }
    }
    match kind_at(&dir, leaf)? {
        Some((Kind::Dir, _)) => {
            before_remove(rel, Kind::Dir);
            let name = CString::new(leaf).map_err(|e| io(rel, std::io::Error::other(e)))?;
            remove_tree_at(&dir, &name, rel, 0, &mut removed)?;
        }
        Some((k @ (Kind::Symlink | Kind::Other), _)) => before_remove(rel, k),
        _ => {}
    }
    Ok(removed)
}

/// Removes directory `name` of `parent` and everything in it, one descriptor per level, never
/// following a symlink (an entry swapped for a symlink meanwhile is unlinked, not entered).
fn remove_tree_at(
    parent: &OwnedFd,
    name: &CStr,
    shown: &str,
    depth: usize,
    removed: &mut u64,
) -> Result<(), FsError> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(io(
            shown,
            std::io::Error::other(format!(
                "more than {MAX_REMOVE_DEPTH} nested directories; not removed"
            )),
        ));
    }
    let fd = match rfs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
            return match rfs::unlinkat(parent, name, AtFlags::empty()) {
                Ok(()) => {
                    *removed += 1;
                    Ok(())
                }
                Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(io(shown, e)),
            };
        }
        Err(e) => return Err(io(shown, e)),
    };
    // A command still writing into the tree can refill it; a few passes, then give up.
    for _ in 0..4 {
        let mut entries: Vec<(CString, rfs::FileType)> = Vec::new();
        let mut rd = rfs::Dir::read_from(&fd).map_err(|e| io(shown, e))?;
        for ent in rd.by_ref() {
            let ent = ent.map_err(|e| io(shown, e))?;
            let n = ent.file_name();
            if n == c"." || n == c".." {
                continue;
            }
            entries.push((n.to_owned(), ent.file_type()));
        }
        drop(rd);
        for (n, ft) in entries {
            let child = format!("{shown}/{}", n.to_string_lossy());
            let is_dir = match ft {
                rfs::FileType::Directory => true,
                rfs::FileType::Unknown => {
                    match rfs::statat(&fd, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => {
                            rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory
                        }
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(io(&child, e)),
                    }
                }
                _ => false,
            };
            if is_dir {
                remove_tree_at(&fd, &n, &child, depth + 1, removed)?;
                continue;
            }
            match rfs::unlinkat(&fd, n.as_c_str(), AtFlags::empty()) {
                Ok(()) => *removed += 1,
                Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => remove_tree_at(&fd, &n, &child, depth + 1, removed)?,
                Err(e) => return Err(io(&child, e)),
            }
        }
        match rfs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => continue,
            Err(e) => return Err(io(shown, e)),
        }
    }
    Err(io(
        shown,
        std::io::Error::other("the directory kept filling up while it was being removed"),
    ))
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

    #[test]
    fn make_way_unlinks_symlinks_and_files_and_removes_directories_without_following() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"keep").unwrap();
        let root = open_root(tmp.path()).unwrap();
        let p = tmp.path();
        // A symlink to a directory outside, where a directory is wanted.
        std::os::unix::fs::symlink(outside.path(), p.join("a")).unwrap();
        // A file where a directory is wanted.
        std::fs::write(p.join("f"), b"f").unwrap();
        // A directory (with a symlink out, a bad name and depth) where a file is wanted.
        std::fs::create_dir_all(p.join("d/x/y")).unwrap();
        std::fs::write(p.join("d/x/y/z"), b"z").unwrap();
        std::os::unix::fs::symlink(outside.path(), p.join("d/out")).unwrap();
        std::fs::write(
            p.join("d").join(std::ffi::OsStr::from_bytes(b"bad\xff")),
            b"b",
        )
        .unwrap();
        let mut seen = Vec::new();
        let mut note = |r: &str, k: Kind| seen.push((r.to_string(), k));
        assert_eq!(make_way(&root, "a/b.txt", &mut note).unwrap(), 1);
        assert_eq!(make_way(&root, "f/g/h.txt", &mut note).unwrap(), 1);
        assert_eq!(make_way(&root, "d", &mut note).unwrap(), 3);
        assert_eq!(
            seen,
            [
                ("a".to_string(), Kind::Symlink),
                ("f".to_string(), Kind::File),
                ("d".to_string(), Kind::Dir)
            ]
        );
        write_atomic(&root, "a/b.txt", b"1").unwrap();
        write_atomic(&root, "f/g/h.txt", b"2").unwrap();
        write_atomic(&root, "d", b"3").unwrap();
        assert_eq!(std::fs::read(p.join("d")).unwrap(), b"3");
        assert_eq!(std::fs::read(p.join("a/b.txt")).unwrap(), b"1");
        let left: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["keep"], "nothing outside touched");
        assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"keep");
    }

    #[test]
    fn read_file_max_never_reads_past_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let root = open_root(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("small"), b"12345").unwrap();
        assert_eq!(read_file_max(&root, "small", 5).unwrap().unwrap(), b"12345");
        let e = read_file_max(&root, "small", 4).unwrap_err();
        assert_eq!(e.rule(), "file_too_large");
        assert!(read_file_max(&root, "missing", 4).unwrap().is_none());
    }
}
