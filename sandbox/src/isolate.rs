//! What runs between `fork` and `exec` of a sandboxed program (through
//! `CommandExt::pre_exec`): new session, namespaces, private mounts, resource limits,
//! dropping to a dedicated user id, no-new-privileges and the seccomp filter.
//!
//! With a PID namespace the spawned child splits into three processes:
//!
//! ```text
//! runner ── outer (host side: waits, then exits)
//!             └─ init (PID 1 of the new namespace: reaps orphans, reports the program's
//!                  │    wait status and resource usage on the status pipe, then exits)
//!                  └─ program (PID 2: limits, user id, seccomp, then exec of Python)
//! ```
//!
//! When `init` exits the kernel kills everything left in the namespace, so nothing the
//! program started (daemons included) outlives the run. The runner stops a run by sending
//! `outer` a `SIGTERM`: `outer` kills `init` and exits only once the namespace is empty.
//! Killing `outer` outright (the last resort) kills `init` through its parent-death signal.
//!
//! Everything here runs in a forked copy of a possibly multi-threaded process: only
//! async-signal-safe calls, no allocation, every string prepared beforehand.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use libc::{c_int, c_ulong, gid_t, rlim_t, uid_t};

/// The namespaces and protections requested for one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct IsolationPlan {
    pub network: bool,
    pub pid: bool,
    pub mount: bool,
    pub drop_privileges: bool,
    pub seccomp: bool,
}

impl IsolationPlan {
    fn unshare_flags(&self) -> c_int {
        let mut flags = 0;
        if self.network {
            flags |= libc::CLONE_NEWNET;
        }
        if self.pid {
            flags |= libc::CLONE_NEWPID;
        }
        if self.mount {
            flags |= libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        }
        flags
    }
}

/// One resource limit to set in the program process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: rlim_t,
    pub hard: rlim_t,
}

/// Size of the report `init` writes on the status pipe: wait status, user and system CPU in
/// microseconds, peak RSS in KiB, each a little-endian i64.
pub(crate) const STATUS_REPORT_LEN: usize = 32;

/// Directories that get a private tmpfs in the mount namespace.
const PRIVATE_TMP_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Everything the child needs, prepared before `fork`.
pub(crate) struct ChildSetup {
    unshare_flags: c_int,
    private_mounts: bool,
    credentials: Option<(uid_t, gid_t)>,
    rlimits: Vec<Rlimit>,
    /// Descriptors the program keeps across `exec` (its pipes to the referee).
    keep_fds: Vec<RawFd>,
    status_fd: RawFd,
    seccomp: Option<Vec<libc::sock_filter>>,
    root: CString,
    proc_dir: CString,
    proc_type: CString,
    tmpfs_type: CString,
    tmpfs_options: CString,
    tmp_dirs: Vec<CString>,
    workdir_binding: Option<WorkdirBinding>,
}

/// How the run directory, hidden by the private tmpfs it lives under, is made visible again
/// at the same path: the directories to create inside the tmpfs (the last one is the mount
/// point) and the bind mount of the current directory onto it.
struct WorkdirBinding {
    create: Vec<CString>,
    target: CString,
}

impl WorkdirBinding {
    fn for_workdir(workdir: &Path) -> Option<WorkdirBinding> {
        let covering = PRIVATE_TMP_DIRS
            .iter()
            .map(Path::new)
            .find(|dir| workdir.starts_with(dir) && workdir != *dir)?;
        let rest = workdir.strip_prefix(covering).ok()?;
        let mut path = covering.to_path_buf();
        let mut create = Vec::new();
        for component in rest.components() {
            path.push(component);
            create.push(CString::new(path.as_os_str().as_bytes()).ok()?);
        }
        Some(WorkdirBinding {
            create,
            target: CString::new(workdir.as_os_str().as_bytes()).ok()?,
        })
    }
}

// SAFETY: the sock_filter program is plain data only read by the child.
unsafe impl Send for ChildSetup {}
unsafe impl Sync for ChildSetup {}

impl ChildSetup {
    pub(crate) fn new(
        plan: IsolationPlan,
        credentials: Option<(uid_t, gid_t)>,
        rlimits: Vec<Rlimit>,
        keep_fds: Vec<RawFd>,
        status_fd: RawFd,
        workdir: &Path,
    ) -> ChildSetup {
        let cstr = |s: &str| CString::new(s).expect("constant has no NUL");
        ChildSetup {
            unshare_flags: plan.unshare_flags(),
            private_mounts: plan.mount,
            credentials: if plan.drop_privileges {
                credentials
            } else {
                None
            },
            rlimits,
            keep_fds,
            status_fd,
            seccomp: if plan.seccomp {
                crate::seccomp::filter()
            } else {
                None
            },
            root: cstr("/"),
            proc_dir: cstr("/proc"),
            proc_type: cstr("proc"),
            tmpfs_type: cstr("tmpfs"),
            tmpfs_options: cstr("size=64m,mode=1777"),
            tmp_dirs: PRIVATE_TMP_DIRS.iter().map(|d| cstr(d)).collect(),
            workdir_binding: if plan.mount {
                WorkdirBinding::for_workdir(workdir)
            } else {
                None
            },
        }
    }

    /// Runs in the spawned child. Returns (to let `exec` proceed) only in the program
    /// process; the outer and init processes never return.
    ///
    /// # Safety
    /// Must only be called from a `pre_exec` hook, i.e. in a freshly forked child.
    pub(crate) unsafe fn enter(&self) -> io::Result<()> {
        check(libc::setsid())?;
        check(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as c_ulong,
            0,
            0,
            0,
        ))?;
        if self.unshare_flags != 0 {
            check(libc::unshare(self.unshare_flags))?;
        }
        if self.unshare_flags & libc::CLONE_NEWPID != 0 {
            let init = check(libc::fork())?;
            if init > 0 {
                self.outer_wait(init);
            }
            // Now PID 1 of the new namespace.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
            if self.private_mounts {
                self.mount_private(true);
            }
            let program = check(libc::fork())?;
            if program > 0 {
                self.init_loop(program);
            }
            libc::close(self.status_fd);
        } else if self.private_mounts {
            self.mount_private(false);
        }
        self.restrict_program()
    }

    /// The host-side process: holds no descriptor, waits for init, exits like it. On
    /// `SIGTERM` it kills init, and so the whole namespace, and still waits: once it has
    /// exited, nothing of the run is left.
    unsafe fn outer_wait(&self, init: libc::pid_t) -> ! {
        NAMESPACE_INIT.store(init, Ordering::Relaxed);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = stop_namespace as extern "C" fn(c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        let mut unblock: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut unblock);
        libc::sigaddset(&mut unblock, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &unblock, std::ptr::null_mut());
        close_from(0);
        let mut status: c_int = 0;
        loop {
            let r = libc::waitpid(init, &mut status, 0);
            if r == init {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(111);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        libc::_exit(112)
    }

    /// PID 1 of the namespace: reaps everything until the program exits, reports how it
    /// ended, and exits (which kills whatever is left in the namespace).
    unsafe fn init_loop(&self, program: libc::pid_t) -> ! {
        close_range(0, self.status_fd - 1);
        close_from(self.status_fd + 1);
        loop {
            let mut status: c_int = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            let r = libc::wait4(-1, &mut status, 0, &mut usage);
            if r == program {
                let micros = timeval_micros;
                let mut report = [0u8; STATUS_REPORT_LEN];
                report[0..8].copy_from_slice(&(status as i64).to_le_bytes());
                report[8..16].copy_from_slice(&micros(usage.ru_utime).to_le_bytes());
                report[16..24].copy_from_slice(&micros(usage.ru_stime).to_le_bytes());
                report[24..32].copy_from_slice(&(usage.ru_maxrss as i64).to_le_bytes());
                libc::write(
                    self.status_fd,
                    report.as_ptr().cast(),
                    STATUS_REPORT_LEN as libc::size_t,
                );
                libc::_exit(0);
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(113);
            }
        }
    }

    /// Makes every mount private to the new namespace first (so nothing propagates to the
    /// host), then mounts a fresh `/proc` (with a PID namespace) and private tmpfs
    /// directories. Best effort: the probe checks what actually took effect.
    unsafe fn mount_private(&self, fresh_proc: bool) {
        let none = std::ptr::null::<libc::c_char>();
        let private = libc::mount(
            none,
            self.root.as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if private != 0 {
            return;
        }
        if fresh_proc {
            libc::mount(
                self.proc_type.as_ptr(),
                self.proc_dir.as_ptr(),
                self.proc_type.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
        }
        for dir in &self.tmp_dirs {
            libc::mount(
                self.tmpfs_type.as_ptr(),
                dir.as_ptr(),
                self.tmpfs_type.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.tmpfs_options.as_ptr().cast(),
            );
        }
        if let Some(binding) = &self.workdir_binding {
            for dir in &binding.create {
                libc::mkdir(dir.as_ptr(), 0o755);
            }
            let here = [b'.' as libc::c_char, 0];
            let bound = libc::mount(
                here.as_ptr(),
                binding.target.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            );
            if bound == 0 {
                libc::chdir(binding.target.as_ptr());
            }
        }
    }

    /// The program process: limits, user id, no new privileges, seccomp.
    unsafe fn restrict_program(&self) -> io::Result<()> {
        for limit in &self.rlimits {
            let value = libc::rlimit {
                rlim_cur: limit.soft,
                rlim_max: limit.hard,
            };
            check(libc::setrlimit(limit.resource, &value))?;
        }
        for &fd in &self.keep_fds {
            let flags = check(libc::fcntl(fd, libc::F_GETFD))?;
            check(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC))?;
        }
        if let Some((uid, gid)) = self.credentials {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(gid, gid, gid))?;
            check(libc::setresuid(uid, uid, uid))?;
            if libc::getuid() != uid || libc::geteuid() != uid || libc::getegid() != gid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            // Changing credentials cleared the parent-death signal; set it again.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        if let Some(filter) = &self.seccomp {
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            check(libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as c_ulong,
                &program as *const libc::sock_fprog as c_ulong,
                0,
                0,
            ))?;
        }
        Ok(())
    }
}

/// The namespace's init, as the outer process knows it (for its `SIGTERM` handler).
static NAMESPACE_INIT: AtomicI32 = AtomicI32::new(0);

/// The outer process's `SIGTERM` handler: kills the namespace's init (async-signal-safe).
extern "C" fn stop_namespace(_signal: c_int) {
    let init = NAMESPACE_INIT.load(Ordering::Relaxed);
    if init > 0 {
        // SAFETY: kill is async-signal-safe; `init` is our unreaped child.
        unsafe {
            libc::kill(init, libc::SIGKILL);
        }
    }
}

fn check<T: Default + PartialOrd>(result: T) -> io::Result<T> {
    if result < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Closes descriptors `first..=last`.
unsafe fn close_range(first: c_int, last: c_int) {
    if last < first || first < 0 {
        return;
    }
    let done = libc::syscall(
        libc::SYS_close_range,
        first as libc::c_uint,
        last as libc::c_uint,
        0 as libc::c_uint,
    );
    if done != 0 {
        for fd in first..=last.min(65_535) {
            libc::close(fd);
        }
    }
}

/// Closes every descriptor from `first` on.
unsafe fn close_from(first: c_int) {
    close_range(first, c_int::MAX);
}

/// A `timeval` in microseconds (its field types vary by platform).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn timeval_micros(t: libc::timeval) -> i64 {
    t.tv_sec as i64 * 1_000_000 + t.tv_usec as i64
}

/// Decoded status report of the program process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgramStatus {
    pub wait_status: i32,
    pub cpu_micros: i64,
    pub max_rss_kib: i64,
}

impl ProgramStatus {
    pub(crate) fn decode(bytes: &[u8]) -> Option<ProgramStatus> {
        if bytes.len() != STATUS_REPORT_LEN {
            return None;
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            i64::from_le_bytes(b)
        };
        Some(ProgramStatus {
            wait_status: field(0) as i32,
            cpu_micros: field(1) + field(2),
            max_rss_kib: field(3),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_report_round_trips() {
        let mut report = [0u8; STATUS_REPORT_LEN];
        report[0..8].copy_from_slice(&9i64.to_le_bytes());
        report[8..16].copy_from_slice(&1_500_000i64.to_le_bytes());
        report[16..24].copy_from_slice(&500_000i64.to_le_bytes());
        report[24..32].copy_from_slice(&4096i64.to_le_bytes());
        let status = ProgramStatus::decode(&report).unwrap();
        assert_eq!(status.wait_status, 9);
        assert_eq!(status.cpu_micros, 2_000_000);
        assert_eq!(status.max_rss_kib, 4096);
        assert_eq!(ProgramStatus::decode(&report[..31]), None);
    }

    #[test]
    fn run_directories_under_private_tmp_are_rebound() {
        let binding = WorkdirBinding::for_workdir(Path::new("/tmp/a/run-1")).unwrap();
        let created: Vec<&[u8]> = binding.create.iter().map(|c| c.as_bytes()).collect();
        assert_eq!(created, vec![&b"/tmp/a"[..], b"/tmp/a/run-1"]);
        assert_eq!(binding.target.as_bytes(), b"/tmp/a/run-1");
        assert!(WorkdirBinding::for_workdir(Path::new("/srv/run-1")).is_none());
        assert!(WorkdirBinding::for_workdir(Path::new("/tmp")).is_none());
        assert!(WorkdirBinding::for_workdir(Path::new("/tmpx/run")).is_none());
    }

    #[test]
    fn namespace_flags_follow_the_plan() {
        let none = IsolationPlan::default();
        assert_eq!(none.unshare_flags(), 0);
        let all = IsolationPlan {
            network: true,
            pid: true,
            mount: true,
            drop_privileges: true,
            seccomp: true,
        };
        let flags = all.unshare_flags();
        assert_ne!(flags & libc::CLONE_NEWNET, 0);
        assert_ne!(flags & libc::CLONE_NEWPID, 0);
        assert_ne!(flags & libc::CLONE_NEWNS, 0);
    }
}
