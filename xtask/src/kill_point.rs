//! Deliberate crashes, for testing that a killed training run resumes without losing work:
//! with `MARS2_KILL_AT=<point>:<round>` in its environment, `cargo xtask train` kills itself
//! with `SIGKILL` when it reaches that point of that round:
//! - `rollout`: the round's trees are grown, nothing of them written yet;
//! - `update`: the round's first update is done and logged;
//! - `checkpoint`: the first agent's checkpoint of the round is written, the round not yet
//!   committed.

/// Kills this process if `MARS2_KILL_AT` names `point` of `round`.
pub fn kill_point(point: &str, round: usize) {
    let Ok(wanted) = std::env::var("MARS2_KILL_AT") else {
        return;
    };
    if wanted == format!("{point}:{round}") {
        eprintln!("MARS2_KILL_AT={wanted}: killing this process");
        // SAFETY: plain system calls on this process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
