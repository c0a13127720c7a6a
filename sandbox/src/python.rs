//! Finding Python interpreters to try. Shims (pyenv, asdf) are resolved to the real binary,
//! since the sandboxed program runs with an empty environment and, as an unprivileged user,
//! may not be able to read a shim's home directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the interpreter to use.
pub const PYTHON_ENV: &str = "MARS2_SANDBOX_PYTHON";

/// Interpreters to try, best first, without duplicates.
pub(crate) fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut push = |p: PathBuf| {
        if !found.contains(&p) {
            found.push(p);
        }
    };
    if let Some(path) = configured {
        push(path.to_path_buf());
        return found;
    }
    if let Some(path) = std::env::var_os(PYTHON_ENV) {
        push(PathBuf::from(path));
        return found;
    }
    for fixed in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(fixed).is_file() {
            push(PathBuf::from(fixed));
        }
    }
    if let Some(real) = resolve_on_path("python3") {
        push(real);
    }
    found
}

/// Asks `name` (as found on `PATH`) for its real executable.
fn resolve_on_path(name: &str) -> Option<PathBuf> {
    let output = Command::new(name)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    path.is_absolute().then_some(path)
}
