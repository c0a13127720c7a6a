//! Start-up probe: finds an interpreter and the strongest isolation plan that works on this
//! machine, and reports what a program really sees under it (its namespaces compared with
//! the host's, its user id, its seccomp mode, whether its `/tmp` is private).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::SandboxError;
use crate::isolate::IsolationPlan;
use crate::python;
use crate::sandbox::{LaunchLimits, Sandbox};
use crate::verdict::IsolationReport;

/// What the probe script reports about its own process.
#[derive(Debug, Deserialize)]
struct Facts {
    uid: u32,
    pid_ns: Option<String>,
    net_ns: Option<String>,
    mnt_ns: Option<String>,
    seccomp: Option<u32>,
}

const PROBE_SCRIPT: &str = r#"
import json, os, sys
marker = sys.argv[1]
facts = {"uid": os.getuid(), "tmp_written": False, "seccomp": None}
for ns in ("pid", "net", "mnt"):
    try:
        facts[ns + "_ns"] = os.readlink("/proc/self/ns/" + ns)
    except OSError:
        facts[ns + "_ns"] = None
try:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                facts["seccomp"] = int(line.split()[1])
except OSError:
    pass
try:
    with open("/tmp/" + marker, "w") as f:
        f.write("probe")
    facts["tmp_written"] = True
except OSError:
    pass
print(json.dumps(facts))
"#;

/// Plans to try, strongest first: drop seccomp, then the mount, PID and network
/// namespaces, then the user switch, one at a time.
fn plans(sandbox: &Sandbox) -> Vec<IsolationPlan> {
    let wanted = sandbox.config().isolation;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut plan = IsolationPlan {
        network: wanted.network,
        pid: wanted.pid,
        mount: wanted.mount,
        drop_privileges: wanted.drop_privileges && root,
        seccomp: wanted.seccomp,
    };
    let mut list = vec![plan];
    let steps: [fn(&mut IsolationPlan); 5] = [
        |p| p.seccomp = false,
        |p| p.mount = false,
        |p| p.pid = false,
        |p| p.network = false,
        |p| p.drop_privileges = false,
    ];
    for step in steps {
        step(&mut plan);
        if list.last() != Some(&plan) {
            list.push(plan);
        }
    }
    list
}

/// Picks the interpreter and plan, and reports the isolation in force.
pub(crate) fn choose(
    sandbox: &Sandbox,
) -> Result<(PathBuf, IsolationPlan, IsolationReport), SandboxError> {
    let pythons = python::candidates(sandbox.config().python.as_deref());
    if pythons.is_empty() {
        return Err(SandboxError::PythonUnavailable(
            "no python3 found (set MARS2_SANDBOX_PYTHON)".into(),
        ));
    }
    let mut failures = Vec::new();
    for plan in plans(sandbox) {
        for python in &pythons {
            match probe(sandbox, plan, python) {
                Ok(report) => return Ok((python.clone(), plan, report)),
                Err(e) => failures.push(format!("{} with {plan:?}: {e}", python.display())),
            }
        }
    }
    Err(SandboxError::PythonUnavailable(failures.join("; ")))
}

fn probe(
    sandbox: &Sandbox,
    plan: IsolationPlan,
    python: &Path,
) -> Result<IsolationReport, SandboxError> {
    let marker = format!("mars2-probe-{}", crate::nonce::random_hex(8));
    let script = PROBE_SCRIPT.replacen("sys.argv[1]", &format!("{marker:?}"), 1);
    let run = sandbox.launch_with(
        plan,
        python,
        &[("probe.py", script.as_bytes())],
        "probe.py",
        None,
        LaunchLimits {
            cpu_total: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            idle: None,
            file_size: 1 << 20,
            address_space: sandbox.limits().address_space,
        },
        None,
    )?;
    let facts: Facts = serde_json::from_slice(&run.stdout.bytes).map_err(|e| {
        SandboxError::Probe(format!(
            "no report ({e}); exit {:?}, signal {:?}, stderr: {}",
            run.exit_code,
            run.signal,
            String::from_utf8_lossy(&run.stderr.bytes)
        ))
    })?;
    let host_marker = Path::new("/tmp").join(&marker);
    let leaked_to_host = host_marker.exists();
    if leaked_to_host {
        let _ = std::fs::remove_file(&host_marker);
    }
    let host_ns = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
    let differs = |inside: &Option<String>, ns: &str| match (inside, host_ns(ns)) {
        (Some(inside), Some(host)) => Path::new(inside) != host.as_path(),
        _ => false,
    };
    let mount_namespace = plan.mount && differs(&facts.mnt_ns, "mnt");
    Ok(IsolationReport {
        network_namespace: plan.network && differs(&facts.net_ns, "net"),
        pid_namespace: plan.pid && differs(&facts.pid_ns, "pid"),
        mount_namespace,
        private_tmp: mount_namespace && !leaked_to_host,
        unprivileged_user: plan.drop_privileges && facts.uid != 0,
        seccomp: plan.seccomp && facts.seccomp == Some(2),
    })
}
