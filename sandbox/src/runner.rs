//! Starting one sandboxed Python process and seeing it to its end: the isolated spawn, one
//! `poll` loop that drains standard output, standard error, the status pipe and, when a
//! referee judges the run, the referee's events (each capped), the wall-clock backstop and the
//! idle watchdog that kill the whole process group, and the final reaping.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::SandboxError;
use crate::isolate::{ChildSetup, IsolationPlan, ProgramStatus, Rlimit, STATUS_REPORT_LEN};
use crate::referee::{Referee, END_LINE};

/// How long to wait for the pipes to close once the process tree is gone or killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long the program's process may take to end by itself once the referee is done (it
/// exits when its request pipe closes; a program that died is still being reported on).
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// Everything needed to run one process.
pub(crate) struct RunRequest<'a> {
    pub python: &'a Path,
    /// Arguments after the interpreter; the numbers of `pass_fds` are appended.
    pub args: Vec<OsString>,
    pub workdir: &'a Path,
    pub stdin: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub plan: IsolationPlan,
    pub credentials: Option<(u32, u32)>,
    pub rlimits: Vec<Rlimit>,
    /// Kill the run once this much wall-clock time has passed.
    pub deadline: Duration,
    /// Kill the run when the referee stays silent this long.
    pub idle_timeout: Option<Duration>,
    /// Bytes of standard output and standard error kept.
    pub output_cap: usize,
    /// Descriptors the program keeps open (the program's ends of its pipes to the referee).
    pub pass_fds: Vec<OwnedFd>,
    /// The referee that judges the run, when one does.
    pub referee: Option<RefereeSession<'a>>,
    /// Bytes of the referee's events kept.
    pub results_cap: usize,
}

/// A referee's part in a run: its ends of the program's pipes and its job, handed over once
/// the program's process exists.
pub(crate) struct RefereeSession<'a> {
    pub referee: &'a Referee,
    pub request_write: OwnedFd,
    pub answer_read: OwnedFd,
    pub job: Vec<u8>,
}

/// Captured bytes of one stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct Captured {
    pub bytes: Vec<u8>,
    pub total: u64,
    keep_tail: bool,
    cap: usize,
}

impl Captured {
    fn new(cap: usize, keep_tail: bool) -> Captured {
        Captured {
            bytes: Vec::new(),
            total: 0,
            keep_tail,
            cap,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if self.keep_tail {
            self.bytes.extend_from_slice(data);
            if self.bytes.len() > self.cap.saturating_mul(2) {
                let cut = self.bytes.len() - self.cap;
                self.bytes.drain(..cut);
            }
        } else if self.bytes.len() < self.cap {
            let room = self.cap - self.bytes.len();
            self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    fn finish(&mut self) {
        if self.keep_tail && self.bytes.len() > self.cap {
            let cut = self.bytes.len() - self.cap;
            self.bytes.drain(..cut);
        }
    }

    pub(crate) fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

/// What became of a run.
#[derive(Debug, Clone)]
pub(crate) struct RawRun {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_seconds: f64,
    pub max_rss_kib: u64,
    pub wall: Duration,
    pub killed_by_backstop: bool,
    pub killed_when_idle: bool,
    pub stdout: Captured,
    pub stderr: Captured,
    /// The referee's events.
    pub results: Captured,
    /// The referee sent its last event (so it can judge again).
    pub referee_ended: bool,
}

struct Stream {
    fd: OwnedFd,
    sink: Captured,
    open: bool,
}

/// Runs the request to completion.
pub(crate) fn run(request: RunRequest<'_>) -> Result<RawRun, SandboxError> {
    let (status_read, status_write) = pipe()?;
    let setup = ChildSetup::new(
        request.plan,
        request.credentials,
        request.rlimits.clone(),
        request.pass_fds.iter().map(AsRawFd::as_raw_fd).collect(),
        status_write.as_raw_fd(),
        request.workdir,
    );

    let mut command = Command::new(request.python);
    command
        .args(&request.args)
        .args(request.pass_fds.iter().map(|fd| fd.as_raw_fd().to_string()))
        .env_clear()
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .current_dir(request.workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &request.stdin {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| SandboxError::io(format!("open {}", path.display()), e))?;
            command.stdin(file);
        }
        None => {
            command.stdin(Stdio::null());
        }
    }
    // SAFETY: `enter` only makes async-signal-safe calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || setup.enter());
    }

    let started = Instant::now();
    let mut child = command.spawn().map_err(SandboxError::Spawn)?;
    drop(request.pass_fds);
    drop(status_write);
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // The child is reaped below with wait4, not through `Child`.
    drop(child);

    let referee_events = match request.referee {
        Some(session) => {
            let handed = session
                .referee
                .send_job(&session.request_write, &session.answer_read, &session.job)
                .and_then(|()| duplicate(session.referee.events_fd()));
            match handed {
                Ok(events) => Some(events),
                Err(e) => {
                    kill_tree(pid);
                    blocking_reap(pid);
                    return Err(e);
                }
            }
        }
        None => None,
    };

    let mut streams: Vec<Stream> = Vec::with_capacity(4);
    let mut add = |fd: OwnedFd, sink: Captured| -> Result<(), SandboxError> {
        set_nonblocking(fd.as_raw_fd())?;
        streams.push(Stream {
            fd,
            sink,
            open: true,
        });
        Ok(())
    };
    const STDOUT: usize = 0;
    const STDERR: usize = 1;
    const STATUS: usize = 2;
    const RESULTS: usize = 3;
    let null_fd = || -> Result<OwnedFd, SandboxError> {
        File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::io("open /dev/null", e))
    };
    add(
        stdout.map_or_else(null_fd, Ok)?,
        Captured::new(request.output_cap, false),
    )?;
    add(
        stderr.map_or_else(null_fd, Ok)?,
        Captured::new(request.output_cap, true),
    )?;
    add(status_read, Captured::new(STATUS_REPORT_LEN, false))?;
    let judged = referee_events.is_some();
    if let Some(events) = referee_events {
        add(events, Captured::new(request.results_cap, false))?;
    }

    let pidfd = pidfd_open(pid);
    let mut reaped: Option<(i32, libc::rusage)> = None;
    let mut killed_at: Option<Instant> = None;
    let mut exited_at: Option<Instant> = None;
    let mut killed_by_backstop = false;
    let mut killed_when_idle = false;
    // The run is over for the referee once it sent its last event, died, or was given up.
    let mut referee_ended = false;
    let mut referee_done = !judged;
    let mut referee_done_at: Option<Instant> = None;
    let mut scanned = 0usize;
    let mut last_result = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        let now = Instant::now();
        let program_closed = streams[..RESULTS.min(streams.len())]
            .iter()
            .all(|s| !s.open);
        if reaped.is_some() && program_closed && referee_done {
            break;
        }
        if killed_at.is_none() {
            if now.duration_since(started) >= request.deadline {
                killed_by_backstop = true;
            } else if request
                .idle_timeout
                .is_some_and(|idle| now.duration_since(last_result) >= idle)
            {
                killed_when_idle = true;
            }
            // The verdict is in: whatever the program still does no longer matters.
            let verdict_in = referee_done_at.is_some_and(|t| now.duration_since(t) >= EXIT_GRACE);
            if killed_by_backstop || killed_when_idle || verdict_in {
                if reaped.is_none() {
                    stop_tree(pid, request.plan.pid);
                }
                killed_at = Some(now);
                referee_done = true;
            }
        }
        let grace_from = match (killed_at, exited_at) {
            (Some(k), Some(e)) => Some(k.min(e)),
            (k, e) => k.or(e),
        };
        if grace_from.is_some_and(|t| now.duration_since(t) >= DRAIN_GRACE) && referee_done {
            if reaped.is_none() {
                kill_tree(pid);
            }
            break;
        }

        // Sleep until something happens or the next deadline.
        let mut wake = started + request.deadline;
        if let Some(idle) = request.idle_timeout {
            wake = wake.min(last_result + idle);
        }
        if let Some(t) = grace_from {
            wake = wake.min(t + DRAIN_GRACE);
        }
        if let (Some(t), None) = (referee_done_at, killed_at) {
            wake = wake.min(t + EXIT_GRACE);
        }
        let mut timeout = wake.saturating_duration_since(now);
        if pidfd.is_none() && reaped.is_none() {
            timeout = timeout.min(Duration::from_millis(20));
        }
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .filter(|s| s.open)
            .map(|s| libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if let (Some(p), None) = (&pidfd, &reaped) {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };

        for (index, stream) in streams.iter_mut().enumerate() {
            if !stream.open {
                continue;
            }
            let got = drain(stream, &mut buf);
            if index == RESULTS {
                if got > 0 {
                    last_result = Instant::now();
                }
                let bytes = &stream.sink.bytes;
                let from = scanned.saturating_sub(END_LINE.len());
                if bytes[from..].windows(END_LINE.len()).any(|w| w == END_LINE) {
                    referee_ended = true;
                }
                scanned = bytes.len();
                if (referee_ended || !stream.open) && !referee_done {
                    referee_done = true;
                    referee_done_at = Some(Instant::now());
                }
            }
        }
        if reaped.is_none() {
            if let Some(done) = try_reap(pid) {
                reaped = Some(done);
                exited_at = Some(Instant::now());
            }
        }
    }

    if reaped.is_none() {
        kill_tree(pid);
        reaped = Some(blocking_reap(pid));
    }
    for stream in streams.iter_mut() {
        stream.sink.finish();
    }
    let wall = started.elapsed();
    let (outer_status, outer_usage) = reaped.unwrap_or((0, unsafe { std::mem::zeroed() }));
    let report = ProgramStatus::decode(&streams[STATUS].sink.bytes);
    let (wait_status, cpu_micros, max_rss) = match report {
        Some(r) => (Some(r.wait_status), r.cpu_micros, r.max_rss_kib),
        None => {
            let micros = crate::isolate::timeval_micros;
            let cpu = micros(outer_usage.ru_utime) + micros(outer_usage.ru_stime);
            // Without a PID namespace the spawned child is the program itself.
            let status = (!request.plan.pid).then_some(outer_status);
            (status, cpu, outer_usage.ru_maxrss)
        }
    };
    let (exit_code, signal) = match wait_status {
        Some(s) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
        Some(s) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
        _ => (None, None),
    };
    let mut take = |i: usize| {
        streams
            .get_mut(i)
            .map(|s| std::mem::take(&mut s.sink))
            .unwrap_or_default()
    };
    Ok(RawRun {
        exit_code,
        signal,
        cpu_seconds: cpu_micros.max(0) as f64 / 1e6,
        max_rss_kib: max_rss.max(0) as u64,
        wall,
        killed_by_backstop,
        killed_when_idle,
        stdout: take(STDOUT),
        stderr: take(STDERR),
        results: take(RESULTS),
        referee_ended,
    })
}

/// A second descriptor for the same open socket (the referee keeps its own).
fn duplicate(fd: RawFd) -> Result<OwnedFd, SandboxError> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one or -1.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(SandboxError::io(
            "duplicate the referee socket",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Reads what is available; marks the stream closed at end of file. Returns bytes read.
fn drain(stream: &mut Stream, buf: &mut [u8]) -> usize {
    let mut got = 0;
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(stream.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            let n = n as usize;
            stream.sink.push(&buf[..n]);
            got += n;
            continue;
        }
        if n == 0 {
            stream.open = false;
            return got;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if err == Some(libc::EINTR) {
            continue;
        }
        if err != Some(libc::EAGAIN) {
            stream.open = false;
        }
        return got;
    }
}

/// Stops a run whose spawned child is not reaped yet: with a PID namespace, asks the outer
/// process to kill the namespace (it exits once the namespace is empty, so that reaping it
/// proves nothing is left); without one, kills the process group at once.
fn stop_tree(pid: libc::pid_t, pid_namespace: bool) {
    if pid_namespace && pid > 1 {
        // SAFETY: a plain system call on our unreaped child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    } else {
        kill_tree(pid);
    }
}

/// Kills the spawned child's process group and the child itself. The child is not reaped
/// yet, so its pid (and group id) cannot have been reused.
fn kill_tree(pid: libc::pid_t) {
    if pid <= 1 {
        return;
    }
    // SAFETY: plain system calls on a pid we own.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

fn try_reap(pid: libc::pid_t) -> Option<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            return Some((status, usage));
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if r < 0 {
            // Not our child any more (should not happen): treat as gone.
            return Some((0, usage));
        }
        return None;
    }
}

fn blocking_reap(pid: libc::pid_t) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: as in try_reap.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            return (status, usage);
        }
    }
}

/// A pipe whose ends are closed on exec (the program's ends are kept by the child setup).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::io(
            "create a pipe",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) fn set_nonblocking(fd: RawFd) -> Result<(), SandboxError> {
    // SAFETY: fcntl on a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(SandboxError::io(
            "make a pipe non-blocking",
            std::io::Error::last_os_error(),
        ))
    }
}

/// A descriptor that becomes readable when the process exits (Linux 5.3+).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: plain system call; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        None
    } else {
        // SAFETY: the kernel returned a fresh descriptor we now own.
        Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_capture_keeps_the_beginning() {
        let mut c = Captured::new(4, false);
        c.push(b"abc");
        c.push(b"def");
        c.finish();
        assert_eq!(c.bytes, b"abcd");
        assert_eq!(c.total, 6);
        assert!(c.truncated());
    }

    #[test]
    fn tail_capture_keeps_the_end() {
        let mut c = Captured::new(4, true);
        for chunk in [&b"abc"[..], b"def", b"ghi"] {
            c.push(chunk);
        }
        c.finish();
        assert_eq!(c.bytes, b"fghi");
        assert_eq!(c.total, 9);
    }
}
