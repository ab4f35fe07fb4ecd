//! Watching a working copy for changes while a terminal is attached: inotify (through
//! `notify`) on every directory the change scan would walk (`changes::walker`: the project's
//! `.gitignore` files with git's semantics, `.git` never), one non-recursive watch each, so
//! ignored trees such as `node_modules` cost no watch and send no event. Events are debounced
//! (a batch ends after 300 ms of quiet, or 1 s after its first event) and filtered with the
//! same `.gitignore` files; a batch with anything left calls `on_change` once.

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Quiet time that ends a batch of events.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a batch waits for quiet before it is reported anyway.
const MAX_BATCH: Duration = Duration::from_secs(1);
/// Directories one watch covers at most (inotify watches are a per-user kernel resource).
const MAX_WATCHED_DIRS: usize = 8192;
/// Events queued between the kernel and the filtering thread; beyond it the batch is marked
/// as overflowed and counts as a change.
const QUEUE: usize = 4096;

/// A running watch; dropping it stops the thread and removes the kernel watches.
pub struct Watch {
    stop: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watch {
    /// Starts watching `root`; `on_change` runs on the watch's thread after each batch that
    /// changed something the project keeps.
    pub fn start(root: PathBuf, on_change: impl Fn() + Send + 'static) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("pty-watch".into())
            .spawn(move || run(root, s, on_change));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the working-copy watch: {e}");
        }
        Watch { stop }
    }
}

/// The `.gitignore` files of the walked tree, by directory.
#[derive(Default)]
struct Rules(HashMap<PathBuf, ignore::gitignore::Gitignore>);

impl Rules {
    /// Whether `path` (absolute, under `root`) is ignored by itself or through a parent.
    fn ignored(&self, root: &Path, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(root) else {
            return true;
        };
        if rel.components().any(|c| c.as_os_str() == ".git") {
            return true;
        }
        // Every parent directory, then the path itself.
        let mut prefix = root.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            prefix.push(c);
            let last = i + 1 == comps.len();
            if self.one(root, &prefix, if last { is_dir } else { true }) {
                return true;
            }
        }
        false
    }

    /// git's rule for one path: the deepest `.gitignore` with an opinion decides.
    fn one(&self, root: &Path, path: &Path, is_dir: bool) -> bool {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if let Some(g) = self.0.get(d) {
                match g.matched(path, is_dir) {
                    ignore::Match::Ignore(_) => return true,
                    ignore::Match::Whitelist(_) => return false,
                    ignore::Match::None => {}
                }
            }
            if d == root {
                break;
            }
            dir = d.parent();
        }
        false
    }
}

/// Walks the tree the change scan walks: its directories and its `.gitignore` rules.
fn walk(root: &Path) -> (Vec<PathBuf>, Rules) {
    let mut dirs = Vec::new();
    let mut rules = Rules::default();
    let mut b = crate::changes::walker(root);
    b.filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
    for e in b.build().flatten() {
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        if is_dir {
            dirs.push(e.path().to_path_buf());
        } else if e.file_name() == ".gitignore" {
            if let Some(parent) = e.path().parent() {
                let mut gb = ignore::gitignore::GitignoreBuilder::new(parent);
                gb.add(e.path());
                if let Ok(g) = gb.build() {
                    rules.0.insert(parent.to_path_buf(), g);
                }
            }
        }
    }
    (dirs, rules)
}

fn run(root: PathBuf, stop: Arc<AtomicBool>, on_change: impl Fn()) {
    let overflow = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<notify::Event>(QUEUE);
    let of = overflow.clone();
    let mut watcher = match notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
        if let Ok(ev) = r {
            if tx.try_send(ev).is_err() {
                of.store(true, Ordering::Relaxed);
            }
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("working-copy watch unavailable: {e}");
            return;
        }
    };
    let mut watched: HashSet<PathBuf> = HashSet::new();
    let mut rules = Rules::default();
    let rewalk = |watcher: &mut notify::RecommendedWatcher,
                  watched: &mut HashSet<PathBuf>,
                  rules: &mut Rules| {
        let (dirs, r) = walk(&root);
        *rules = r;
        // Directories gone or now ignored drop out of the set (their kernel watch went with
        // them, or costs nothing until the next restart of the watch).
        watched.retain(|d| dirs.contains(d));
        for d in dirs {
            if watched.len() >= MAX_WATCHED_DIRS {
                tracing::warn!(root = %root.display(), "working-copy watch: too many directories, some are not watched");
                break;
            }
            if !watched.contains(&d) && watcher.watch(&d, RecursiveMode::NonRecursive).is_ok() {
                watched.insert(d);
            }
        }
    };
    rewalk(&mut watcher, &mut watched, &mut rules);
    let mut batch: Vec<notify::Event> = Vec::new();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                if matches!(
                    ev.kind,
                    EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
                ) {
                    continue;
                }
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                batch.push(ev);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let overflowed = overflow.swap(false, Ordering::Relaxed);
        let Some(started) = first.or(overflowed.then(Instant::now)) else {
            continue;
        };
        if !overflowed && last.elapsed() < DEBOUNCE && started.elapsed() < MAX_BATCH {
            continue;
        }
        first = None;
        let mut changed = overflowed;
        let mut need_walk = overflowed;
        for ev in batch.drain(..) {
            for p in &ev.paths {
                let is_dir = matches!(
                    ev.kind,
                    EventKind::Create(notify::event::CreateKind::Folder)
                        | EventKind::Remove(notify::event::RemoveKind::Folder)
                ) || p.symlink_metadata().is_ok_and(|m| m.is_dir());
                if rules.ignored(&root, p, is_dir) {
                    continue;
                }
                changed = true;
                if (is_dir && p.exists()) || p.file_name().is_some_and(|n| n == ".gitignore") {
                    need_walk = true;
                }
            }
        }
        if need_walk {
            rewalk(&mut watcher, &mut watched, &mut rules);
        }
        if changed {
            on_change();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_gitignore_semantics() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::write(root.join(".gitignore"), "node_modules/\n*.db\n!keep.db\n").unwrap();
        std::fs::create_dir_all(root.join("node_modules/a")).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/.gitignore"), "gen/\n").unwrap();
        let (dirs, rules) = walk(root);
        assert!(dirs
            .iter()
            .all(|d| !d.starts_with(root.join("node_modules"))));
        assert!(rules.ignored(root, &root.join("node_modules"), true));
        assert!(rules.ignored(root, &root.join("node_modules/a/b.js"), false));
        assert!(rules.ignored(root, &root.join("app.db"), false));
        assert!(!rules.ignored(root, &root.join("keep.db"), false));
        assert!(rules.ignored(root, &root.join("src/gen/x.ts"), false));
        assert!(!rules.ignored(root, &root.join("src/x.ts"), false));
        assert!(rules.ignored(root, &root.join(".git/HEAD"), false));
        assert!(!rules.ignored(root, &root.join("f.txt"), false));
    }
}
