//! Per-project cgroups (memory, pids, cpu) on cgroup v1 or v2, whichever the host mounts,
//! nested under the VM API's own cgroup so the host's accounting of the service still holds.

use super::SandboxError;
use std::ffi::CString;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Limits applied to every project's group; 0 means "not limited" (controller not required).
#[derive(Debug, Clone, Copy, Default)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    pub cpu_percent: u64,
}

/// The parent directories (one per controller on v1, one in total on v2) under which each
/// project gets `{name}/{project}`.
pub struct Cgroups {
    pub version: Version,
    /// (controller, directory holding our per-service group)
    bases: Vec<(&'static str, PathBuf)>,
    limits: CgroupLimits,
}

const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x63677270;

fn fs_magic(p: &Path) -> Option<i64> {
    rustix::fs::statfs(p).ok().map(|s| s.f_type)
}

/// This process's path in the hierarchy holding `controller` (v1) or the unified one (v2).
fn own_path(version: Version, controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let hit = match version {
            Version::V2 => ctrls.is_empty(),
            Version::V1 => ctrls.split(',').any(|c| c == controller),
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

impl Cgroups {
    /// Finds the controllers `limits` needs; names the first one missing.
    pub fn detect(name: &str, limits: CgroupLimits) -> Result<Cgroups, String> {
        let root = Path::new("/sys/fs/cgroup");
        let wanted: Vec<&'static str> = [
            ("memory", limits.memory_bytes),
            ("pids", limits.pids),
            ("cpu", limits.cpu_percent),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(c, _)| c)
        .collect();
        if fs_magic(root) == Some(CGROUP2_SUPER_MAGIC) {
            let own = own_path(Version::V2, "").ok_or("cannot read /proc/self/cgroup")?;
            let base = root.join(own).join(name);
            let available =
                std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            for c in &wanted {
                if !available.split_whitespace().any(|a| a == *c) {
                    return Err(format!("cgroup v2 controller {c} is not available"));
                }
            }
            std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            // Our group's children need the controllers delegated to them.
            let ctl: String = wanted.iter().map(|c| format!("+{c} ")).collect();
            if !ctl.is_empty() {
                std::fs::write(base.join("cgroup.subtree_control"), ctl.trim())
                    .map_err(|e| format!("enabling {ctl}in {}: {e}", base.display()))?;
            }
            return Ok(Cgroups {
                version: Version::V2,
                bases: vec![("unified", base)],
                limits,
            });
        }
        let mut bases = Vec::new();
        for c in wanted {
            let mnt = root.join(c);
            if fs_magic(&mnt) != Some(CGROUP_SUPER_MAGIC) {
                return Err(format!(
                    "cgroup v1 controller {c} is not mounted at {}",
                    mnt.display()
                ));
            }
            let own = own_path(Version::V1, c).unwrap_or_default();
            let base = mnt.join(own).join(name);
            std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            bases.push((c, base));
        }
        Ok(Cgroups {
            version: Version::V1,
            bases,
            limits,
        })
    }

    fn dirs<'a>(&'a self, project: &'a str) -> impl Iterator<Item = (&'static str, PathBuf)> + 'a {
        self.bases.iter().map(move |(c, b)| (*c, b.join(project)))
    }

    /// Creates the project's groups with their limits; returns the files a new process writes
    /// "0" into (between fork and exec, single-threaded) to join them. On v1 that is `tasks`,
    /// which moves the calling thread alone: for a process with one thread that is the whole
    /// process, and the kernel then skips `cgroup_threadgroup_rwsem`, whose first write lock
    /// after an idle spell waits for an RCU grace period (`cgroup.procs`: 5–11 ms after 50–200
    /// ms idle; `tasks`: 0.07 ms, measured 2026-12-02). On v2 a domain group takes whole
    /// processes only (`cgroup.procs`).
    pub fn ensure(&self, project: &str) -> Result<Vec<CString>, SandboxError> {
        let l = self.limits;
        let err = |what: &str, e: std::io::Error| {
            SandboxError::mechanism("cgroup", format!("{what}: {e}"))
        };
        let mut procs = Vec::new();
        for (ctrl, dir) in self.dirs(project) {
            // Two commands of a new project may start at once (the frontend's and the
            // backend's installs): whichever creates the group first, both use it.
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(&dir.display().to_string(), e)),
            }
            let set = |file: &str, value: String| {
                std::fs::write(dir.join(file), value).map_err(|e| err(file, e))
            };
            match (self.version, ctrl) {
                (Version::V1, "memory") => {
                    set("memory.limit_in_bytes", l.memory_bytes.to_string())?;
                    // Without this, a project could page its excess out to swap.
                    if dir.join("memory.memsw.limit_in_bytes").exists() {
                        set("memory.memsw.limit_in_bytes", l.memory_bytes.to_string())?;
                    }
                }
                (Version::V1, "pids") => set("pids.max", l.pids.to_string())?,
                (Version::V1, "cpu") => {
                    set("cpu.cfs_period_us", "100000".into())?;
                    set("cpu.cfs_quota_us", (l.cpu_percent * 1000).to_string())?;
                }
                (Version::V2, _) => {
                    if l.memory_bytes > 0 {
                        set("memory.max", l.memory_bytes.to_string())?;
                        if dir.join("memory.swap.max").exists() {
                            set("memory.swap.max", "0".into())?;
                        }
                    }
                    if l.pids > 0 {
                        set("pids.max", l.pids.to_string())?;
                    }
                    if l.cpu_percent > 0 {
                        set("cpu.max", format!("{} 100000", l.cpu_percent * 1000))?;
                    }
                }
                _ => {}
            }
            let p = dir.join(match self.version {
                Version::V1 => "tasks",
                Version::V2 => "cgroup.procs",
            });
            procs.push(
                CString::new(p.as_os_str().as_encoded_bytes())
                    .map_err(|e| SandboxError::mechanism("cgroup", e))?,
            );
        }
        Ok(procs)
    }

    /// Pids currently in the project's groups.
    pub fn pids(&self, project: &str) -> Vec<i32> {
        let mut out: Vec<i32> = self
            .dirs(project)
            .filter_map(|(_, d)| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILLs everything in the project's groups (a few rounds, for processes forking).
    pub fn kill_all(&self, project: &str) {
        for _ in 0..20 {
            let pids = self.pids(project);
            if pids.is_empty() {
                return;
            }
            for p in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(p) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Kills and removes every project group and our parent group.
    /// Kills what the project still runs and removes its groups (the project was deleted; a
    /// later command would create them again).
    pub fn remove(&self, project: &str) {
        self.kill_all(project);
        for (_, dir) in self.dirs(project) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    pub fn remove_all(&self) {
        for (_, base) in &self.bases {
            if let Ok(rd) = std::fs::read_dir(base) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        let project = e.file_name().to_string_lossy().into_owned();
                        self.kill_all(&project);
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Threads lined up on a barrier all set up the same new project at once: every one gets
    /// the group (on hosts where this process may create cgroups at all).
    #[test]
    fn concurrent_ensure_of_a_new_project_all_succeed() {
        let limits = CgroupLimits {
            memory_bytes: 256 << 20,
            pids: 64,
            cpu_percent: 0,
        };
        let name = format!("open-replit-test-{}", std::process::id());
        let Ok(cg) = Cgroups::detect(&name, limits) else {
            eprintln!("no writable cgroup hierarchy here; nothing to test");
            return;
        };
        let cg = Arc::new(cg);
        for round in 0..50 {
            let project = format!("race-{round}");
            let barrier = Arc::new(Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (cg, barrier, project) = (cg.clone(), barrier.clone(), project.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        cg.ensure(&project).map(|_| ()).map_err(|e| e.to_string())
                    })
                })
                .collect();
            for h in handles {
                let r = h.join().expect("thread");
                assert!(r.is_ok(), "round {round}: {r:?}");
            }
        }
        cg.remove_all();
    }
}
