//! The seccomp deny-list handed to bubblewrap (`--add-seccomp-fd`): syscalls a build or a dev
//! server never needs but an escape or a kernel exploit often does.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Syscalls refused with EPERM whatever their arguments.
const DENY: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    // Joining any namespace: a sandbox never needs it.
    ("setns", libc::SYS_setns),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("acct", libc::SYS_acct),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("quotactl", libc::SYS_quotactl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

fn arch() -> Result<TargetArch, String> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))
}

fn to_bytes(prog: BpfProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for ins in prog {
        out.extend_from_slice(&ins.code.to_ne_bytes());
        out.push(ins.jt);
        out.push(ins.jf);
        out.extend_from_slice(&ins.k.to_ne_bytes());
    }
    out
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<Vec<u8>, String> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch()?,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let prog: BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e}"))?;
    Ok(to_bytes(prog))
}

/// The compiled programs, each a raw `sock_filter` array as bwrap reads it from an fd.
///
/// Two programs because one filter has one action: the deny-list answers EPERM, while
/// `clone3` answers ENOSYS (its flags live in memory a filter cannot read, and ENOSYS makes
/// libc fall back to `clone`, whose flags the first program does check).
pub fn programs() -> Result<Vec<Vec<u8>>, String> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> =
        DENY.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    let newuser = libc::CLONE_NEWUSER as u64;
    let flag_rule = |arg: u8| -> Result<Vec<SeccompRule>, String> {
        let cond = SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(newuser),
            newuser,
        )
        .map_err(|e| format!("seccomp: {e}"))?;
        Ok(vec![
            SeccompRule::new(vec![cond]).map_err(|e| format!("seccomp: {e}"))?
        ])
    };
    // New user namespaces are the usual first step of a kernel exploit.
    deny.insert(libc::SYS_unshare, flag_rule(0)?);
    deny.insert(libc::SYS_clone, flag_rule(0)?);
    let eperm = compile(deny, libc::EPERM)?;
    let clone3: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, Vec::new())].into();
    let enosys = compile(clone3, libc::ENOSYS)?;
    Ok(vec![eperm, enosys])
}

/// Names of the denied syscalls, for documentation and error messages.
pub fn denied_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = DENY.iter().map(|(n, _)| *n).collect();
    v.extend([
        "unshare(CLONE_NEWUSER)",
        "clone(CLONE_NEWUSER)",
        "clone3 (ENOSYS)",
    ]);
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn programs_compile() {
        let p = super::programs().unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|b| !b.is_empty() && b.len() % 8 == 0));
    }
}
