//! The referees: trusted Python processes running `referee.py`, which hold a judgement's tests
//! and decide its verdict while the program's process only answers their requests with data.
//! A referee never runs candidate code, so one process serves judgement after judgement; the
//! pool keeps idle ones for the next judgement and spawns more when every one is busy.
//!
//! For each judgement the sandbox sends a referee, over its Unix socket, one byte carrying the
//! referee's ends of the program's two pipes (`SCM_RIGHTS`), then the job (an 8-byte
//! little-endian length and JSON). The referee answers on the same socket with event lines,
//! the last one `{"ev": "end"}`. The tests travel only on this socket: nothing of them is
//! written to a file or handed to the program's process.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::SandboxError;
use crate::problem::TestCase;

/// Source of the referee.
pub const REFEREE_SOURCE: &str = include_str!("referee.py");

/// The last event of every judgement.
pub(crate) const END_LINE: &[u8] = b"{\"ev\": \"end\"";

/// What a referee is asked to judge.
#[derive(Debug, Serialize)]
pub(crate) struct RefereeJob<'a> {
    pub tests: Vec<&'a TestCase>,
    /// Wall-clock seconds per test (the referee allows one more before it stops waiting).
    pub wall_limit: f64,
    /// Wall-clock seconds for the program's process to start and compile.
    pub startup: f64,
    /// Code of the problem itself that assert tests may rely on (HumanEval's prompt, with
    /// its helper functions), run by the referee, never taken from the program.
    pub prelude: Option<&'a str>,
    /// The function under test, the one name an assert test takes from the program when a
    /// prelude is given.
    pub entry_point: Option<&'a str>,
    /// Largest answer of the program, in bytes.
    pub answer_cap: usize,
}

/// One referee process and the sandbox's end of its socket.
#[derive(Debug)]
pub(crate) struct Referee {
    child: Child,
    socket: UnixStream,
    log: PathBuf,
}

impl Referee {
    fn spawn(python: &Path, dir: &Path, index: usize) -> Result<Referee, SandboxError> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| SandboxError::io("socketpair", e))?;
        let log = dir.join(format!("referee-{index}.log"));
        let stderr = fs::File::create(&log)
            .map_err(|e| SandboxError::io(format!("create {}", log.display()), e))?;
        let child = Command::new(python)
            .args(["-I", "-B", "-X", "utf8"])
            .arg(dir.join(REFEREE_FILE))
            .arg("0")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(SandboxError::Spawn)?;
        Ok(Referee {
            child,
            socket: ours,
            log,
        })
    }

    /// The descriptor the referee's events arrive on.
    pub(crate) fn events_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Hands the referee its ends of the program's pipes and the job.
    pub(crate) fn send_job(
        &self,
        request_write: &OwnedFd,
        answer_read: &OwnedFd,
        job: &[u8],
    ) -> Result<(), SandboxError> {
        set_blocking(self.events_fd(), true)?;
        send_fds(
            self.events_fd(),
            &[request_write.as_raw_fd(), answer_read.as_raw_fd()],
        )
        .map_err(|e| SandboxError::io("hand the program's pipes to the referee", e))?;
        let mut socket = &self.socket;
        socket
            .write_all(&(job.len() as u64).to_le_bytes())
            .and_then(|()| socket.write_all(job))
            .map_err(|e| SandboxError::io("send the job to the referee", e))?;
        set_blocking(self.events_fd(), false)
    }

    /// The last lines the referee wrote on its standard error (for reports when it failed).
    pub(crate) fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Referee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

/// File name of the referee inside the pool's directory.
const REFEREE_FILE: &str = "referee.py";

/// Idle referees, ready for the next judgement.
#[derive(Debug)]
pub(crate) struct RefereePool {
    python: PathBuf,
    dir: PathBuf,
    idle: Mutex<Vec<Referee>>,
    spawned: Mutex<usize>,
    keep_idle: usize,
}

impl RefereePool {
    /// A pool whose referees run `python` from a fresh private directory under `root`; starts
    /// one referee to show that it can.
    pub(crate) fn new(
        python: &Path,
        root: &Path,
        keep_idle: usize,
    ) -> Result<RefereePool, SandboxError> {
        let dir = root.join(format!(
            "mars2-referee-{}-{}",
            std::process::id(),
            crate::nonce::random_hex(4)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
        let file = dir.join(REFEREE_FILE);
        fs::write(&file, REFEREE_SOURCE)
            .map_err(|e| SandboxError::io(format!("write {}", file.display()), e))?;
        let pool = RefereePool {
            python: python.to_path_buf(),
            dir,
            idle: Mutex::new(Vec::new()),
            spawned: Mutex::new(0),
            keep_idle: keep_idle.max(1),
        };
        let first = pool.take()?;
        pool.give_back(first);
        Ok(pool)
    }

    /// An idle referee, or a new one.
    pub(crate) fn take(&self) -> Result<Referee, SandboxError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(referee) = idle {
            return Ok(referee);
        }
        let index = {
            let mut spawned = self.spawned.lock().unwrap_or_else(|p| p.into_inner());
            *spawned += 1;
            *spawned
        };
        Referee::spawn(&self.python, &self.dir, index)
    }

    /// Returns a referee that finished its judgement cleanly.
    pub(crate) fn give_back(&self, referee: Referee) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep_idle {
            idle.push(referee);
        }
    }
}

impl Drop for RefereePool {
    fn drop(&mut self) {
        self.idle
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn set_blocking(fd: RawFd, blocking: bool) -> Result<(), SandboxError> {
    // SAFETY: fcntl on a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        let flags = if blocking {
            flags & !libc::O_NONBLOCK
        } else {
            flags | libc::O_NONBLOCK
        };
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(SandboxError::io(
            "set the referee socket's mode",
            std::io::Error::last_os_error(),
        ))
    }
}

/// Sends one byte with `fds` attached as `SCM_RIGHTS` on a Unix stream socket.
fn send_fds(socket: RawFd, fds: &[RawFd]) -> std::io::Result<()> {
    let payload = [b'J'];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the sendmsg call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space as _;
    // SAFETY: the control buffer holds one header with room for `fds`.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), fd_bytes);
    }
    loop {
        // SAFETY: `message` describes valid buffers.
        let sent = unsafe { libc::sendmsg(socket, &message, libc::MSG_NOSIGNAL) };
        if sent == 1 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if sent < 0 && error.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return Err(if sent < 0 {
            error
        } else {
            std::io::Error::other("the marker byte was not sent")
        });
    }
}
