//! The seccomp-BPF filter installed on sandboxed programs. It is a deny list: ordinary
//! programs (Python with threads, subprocesses, files, pipes) run unchanged, while system
//! calls that only serve to escape or to attack the kernel fail with `EPERM`: tracing other
//! processes, mounting, creating or entering namespaces, loading BPF or kernel modules,
//! keyrings, `userfaultfd`, `io_uring`, changing the clock or the host name.
//!
//! `clone` is allowed without namespace flags; `clone3` (whose flags a filter cannot read)
//! answers `ENOSYS`, which makes the C library fall back to `clone`. A call made with a
//! foreign system-call ABI (x32 on x86-64, or another architecture) kills the process.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod enabled {
    use libc::{sock_filter, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;

    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;
    const OFFSET_ARG0_LOW: u32 = 16;

    const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u32;

    const DENIED: &[libc::c_long] = &[
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_syslog,
        libc::SYS_vhangup,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
    ];

    fn stmt(code: u32, k: u32) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }

    fn ret(action: u32) -> sock_filter {
        stmt(BPF_RET | BPF_K, action)
    }

    fn errno(code: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | (code as u32 & libc::SECCOMP_RET_DATA)
    }

    pub(crate) fn filter() -> Option<Vec<sock_filter>> {
        let mut f = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARCH),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
            ret(libc::SECCOMP_RET_KILL_PROCESS),
            stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_NR),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            // x32 system calls carry bit 30 in their number.
            f.push(jump(BPF_JMP | libc::BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
            f.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
        }
        for &nr in DENIED {
            f.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1));
            f.push(ret(errno(libc::EPERM)));
        }
        f.push(jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_clone3 as u32,
            0,
            1,
        ));
        f.push(ret(errno(libc::ENOSYS)));
        f.push(jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_clone as u32,
            0,
            3,
        ));
        f.push(stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARG0_LOW));
        f.push(jump(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1));
        f.push(ret(errno(libc::EPERM)));
        f.push(ret(libc::SECCOMP_RET_ALLOW));
        Some(f)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use enabled::filter;

/// No filter on architectures this module has no system-call table for.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn filter() -> Option<Vec<libc::sock_filter>> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_fits_a_bpf_program() {
        if let Some(f) = super::filter() {
            assert!(f.len() < 4096);
            // The last instruction allows everything not denied.
            assert_eq!(f.last().unwrap().k, libc::SECCOMP_RET_ALLOW);
        }
    }
}
