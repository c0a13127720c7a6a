//! `cargo xtask train` with data-parallel peers matches the single-peer run: two CPU peers in
//! one process (`--devices cpu,cpu`) and two processes over loopback (`--nodes 2`), every
//! update's loss, KL, gradient norm and learning rate within 1e-5 of the single peer's.

use std::path::Path;

use crate::common::{free_port_pairs, run_ok, tiny_code_model, tiny_train_config, xtask};
use serde_json::Value;

fn train(config: &Path, extra: &[String]) -> std::process::Command {
    let mut command = xtask();
    command.args(["train", "--require-isolation", "false", "--config"]);
    command.arg(config).args(extra);
    command
}

fn metrics(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn assert_same_updates(got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "updates");
    assert!(!want.is_empty());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["round"], w["round"]);
        for key in ["loss", "kl", "grad_norm", "lr", "mean_reward"] {
            let (a, b) = (
                g["metrics"][key].as_f64().expect("a number"),
                w["metrics"][key].as_f64().expect("a number"),
            );
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs())),
                "round {} {key}: {a} against {b}",
                g["round"]
            );
        }
    }
}

#[test]
fn two_peers_and_two_processes_train_as_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_code_model(dir.path());
    let run = |name: &str| {
        let out = dir.path().join(name);
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, tiny_train_config(&model, &out, 2)).expect("config");
        (out, config)
    };

    let (single_out, single) = run("single");
    run_ok(&mut train(&single, &[]));
    let want = metrics(&single_out);

    let (peers_out, peers) = run("peers");
    let output = run_ok(&mut train(&peers, &["--devices".into(), "cpu,cpu".into()]));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("training on cpu,cpu (2 peers)"), "{said}");
    assert_same_updates(&metrics(&peers_out), &want);

    let (nodes_out, nodes) = run("nodes");
    let ports = free_port_pairs();
    let node = |id: usize| {
        let flags = [
            "--nodes".to_string(),
            "2".into(),
            "--node-id".into(),
            id.to_string(),
            "--coordinator".into(),
            format!("127.0.0.1:{}", ports[0]),
            "--node-address".into(),
            format!("127.0.0.1:{}", ports[1 + id]),
            "--peer-timeout".into(),
            "300".into(),
        ];
        train(&nodes, &flags)
    };
    let mut second = node(1).spawn().expect("node 1 starts");
    run_ok(&mut node(0));
    assert!(
        second.wait().expect("node 1 ends").success(),
        "node 1 failed"
    );
    assert_same_updates(&metrics(&nodes_out), &want);
    assert!(nodes_out.join("summary.json").is_file());
}

#[test]
fn bad_parallel_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = xtask()
        .args(["train", "--devices", "cpu,cuda:0"])
        .current_dir(dir.path())
        .output()
        .expect("xtask starts");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cpu") && said.contains("cuda:0"), "{said}");
    let out = xtask()
        .args(["train", "--nodes", "2", "--node-id", "2"])
        .args(["--coordinator", "h:1", "--node-address", "h:2"])
        .output()
        .expect("xtask starts");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("node id 2"), "{said}");
}
