//! Starting the sandbox for a command that judges programs: it says at once which protections
//! this machine lacks, and refuses to go on without them when full isolation is required.

use anyhow::{Context, Result};
use mars2_sandbox::{Sandbox, SandboxConfig};

/// The sandbox of a judging command. Prints a warning naming every missing protection; with
/// `require`, a missing protection is an error instead.
pub fn start_sandbox(config: SandboxConfig, require: bool) -> Result<Sandbox> {
    let sandbox = Sandbox::new(config).context("starting the sandbox")?;
    let missing = sandbox.isolation().missing();
    if !missing.is_empty() {
        if require {
            return sandbox
                .require_full_isolation()
                .map(|()| sandbox)
                .context("--require-isolation");
        }
        eprintln!(
            "warning: candidate programs run without {} on this machine; a program could reach \
             more of the host than it should (--require-isolation refuses to run like this)",
            missing.join(", ")
        );
    }
    Ok(sandbox)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars2_sandbox::IsolationOptions;

    fn weak() -> SandboxConfig {
        SandboxConfig {
            isolation: IsolationOptions {
                network: false,
                pid: false,
                mount: false,
                drop_privileges: false,
                seccomp: false,
            },
            ..SandboxConfig::default()
        }
    }

    #[test]
    fn weak_isolation_is_refused_when_required_and_named_otherwise() {
        let err = start_sandbox(weak(), true).unwrap_err();
        let text = format!("{err:#}");
        for missing in ["network namespace", "PID namespace", "seccomp"] {
            assert!(text.contains(missing), "{text}");
        }
        let sandbox = start_sandbox(weak(), false).expect("accepted with a warning");
        assert!(!sandbox.isolation().is_complete());
    }
}
