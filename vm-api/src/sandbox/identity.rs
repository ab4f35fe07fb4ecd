//! Per-project identity: a stable unprivileged uid/gid derived from the project id (recorded
//! so two ids that hash alike never share one), and symlink-safe ownership and size walks of a
//! project's directories.

use super::SandboxError;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Project uids live in `[base, base + UID_SPAN)`, far from system users (< 1000), login users
/// and the usual `/etc/subuid` ranges (100000 + 65536·n).
pub const UID_SPAN: u32 = 1 << 30;
pub const DEFAULT_UID_BASE: u32 = 1_000_000_000;
/// Hash collisions are resolved by probing the next uid; this bounds the probe.
const MAX_PROBE: u32 = 1024;

/// Allocates and remembers project uids under `dir` (one file per uid holding its project id,
/// created with `O_EXCL`, so the mapping survives restarts and never hands one uid to two
/// projects).
pub struct UidMap {
    dir: PathBuf,
    base: u32,
    cache: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// Where the hash of `project` lands, before collision probing.
pub fn preferred_uid(base: u32, project: &str) -> u32 {
    let h = Sha256::digest(project.as_bytes());
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    base + n % UID_SPAN
}

impl UidMap {
    pub fn new(dir: PathBuf, base: u32) -> std::io::Result<UidMap> {
        std::fs::create_dir_all(&dir)?;
        Ok(UidMap {
            dir,
            base,
            cache: Default::default(),
        })
    }

    /// The project's uid (its gid has the same number).
    pub fn uid(&self, project: &str) -> Result<u32, SandboxError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = cache.get(project) {
            return Ok(*u);
        }
        let first = preferred_uid(self.base, project) - self.base;
        for i in 0..MAX_PROBE {
            let uid = self.base + (first + i) % UID_SPAN;
            let path = self.dir.join(uid.to_string());
            let claimed = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, project.as_bytes()));
            match claimed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(project) {
                        continue;
                    }
                }
                Err(e) => return Err(SandboxError::mechanism("per-project uid", e)),
            }
            cache.insert(project.to_string(), uid);
            return Ok(uid);
        }
        Err(SandboxError::mechanism(
            "per-project uid",
            "no free uid near the project's hash",
        ))
    }
}

fn open_dir_nofollow(dir: impl AsFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Visits every entry under `root` (not `root` itself) without following symlinks: directories
/// are opened with `O_NOFOLLOW` relative to their parent's fd, so a symlink swapped in by a
/// running command can never redirect the walk. `f` gets the parent fd, the name and its stat.
pub fn walk_nofollow(
    root: &Path,
    f: &mut dyn FnMut(&OwnedFd, &std::ffi::CStr, &rfs::Stat),
) -> std::io::Result<()> {
    let fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut stack = vec![fd];
    while let Some(dir) = stack.pop() {
        let mut entries = rfs::Dir::read_from(&dir)?;
        for ent in entries.by_ref() {
            let ent = ent?;
            let name = ent.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue; // removed meanwhile
            };
            f(&dir, name, &st);
            if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
                if let Ok(sub) = rfs::openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    stack.push(sub);
                }
            }
        }
    }
    Ok(())
}

fn owner(uid: u32) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    // SAFETY-free: plain numbers; these constructors only reject -1.
    (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(uid)))
}

/// Gives `dir` (created if missing, mode 0700) to `uid`; when it belonged to someone else
/// (created by an older version as root), hands over everything under it too.
pub fn own_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let fd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rfs::fstat(&fd)?;
    let (u, g) = owner(uid);
    if st.st_uid != uid || st.st_gid != uid {
        walk_nofollow(dir, &mut |parent, name, st| {
            // Root-owned files with several links are the shared dependency cache's: they
            // stay read-only to every project.
            let shared = st.st_uid == 0
                && st.st_nlink > 1
                && rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile;
            if st.st_uid != uid && !shared {
                let _ = rfs::chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW);
            }
        })?;
        rfs::fchown(&fd, u, g)?;
    }
    if st.st_mode & 0o7777 != 0o700 {
        rfs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok(())
}

/// Gives `rel` and each directory on the way to it (below `root`) to `uid`, opening every
/// component with `O_NOFOLLOW`: a symlink on the way stops the walk, nothing outside is touched.
pub fn own_path(root: &Path, rel: &str, uid: u32) -> std::io::Result<()> {
    let (u, g) = owner(uid);
    let mut dir = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        rfs::chownat(&dir, *part, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
        if i + 1 < parts.len() {
            dir = open_dir_nofollow(&dir, part)?;
        }
    }
    Ok(())
}

/// Bytes allocated on disk under `dir` (sparse files count what they really use).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let _ = walk_nofollow(dir, &mut |_, _, st| {
        total = total.saturating_add((st.st_blocks as u64).saturating_mul(512));
    });
    total
}

/// `/etc/passwd` and `/etc/group` for inside the sandbox: root, nobody and the project user.
pub fn passwd_and_group(uid: u32) -> (String, String) {
    (
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             user:x:{uid}:{uid}:project:/home/user:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        format!("root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_stable_distinct_and_unprivileged() {
        let tmp = tempfile::tempdir().unwrap();
        let m = UidMap::new(tmp.path().join("uids"), DEFAULT_UID_BASE).unwrap();
        let a = m.uid("alpha").unwrap();
        assert_eq!(a, m.uid("alpha").unwrap());
        assert_eq!(a, preferred_uid(DEFAULT_UID_BASE, "alpha"));
        assert!((DEFAULT_UID_BASE..DEFAULT_UID_BASE + UID_SPAN).contains(&a));
        // A fresh map over the same directory (a restart) gives the same answer.
        let m2 = UidMap::new(tmp.path().join("uids"), DEFAULT_UID_BASE).unwrap();
        assert_eq!(a, m2.uid("alpha").unwrap());
        // Simulate a hash collision: someone else holds beta's preferred uid.
        let pb = preferred_uid(DEFAULT_UID_BASE, "beta");
        std::fs::write(tmp.path().join("uids").join(pb.to_string()), "other").unwrap();
        let b = m2.uid("beta").unwrap();
        assert_ne!(b, pb);
        assert_ne!(b, a);
    }

    #[test]
    fn own_path_stops_at_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
        assert!(own_path(tmp.path(), "link/f", 1_234_567).is_err());
        let st = std::fs::metadata(outside.path().join("f")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), 0);
    }
}
