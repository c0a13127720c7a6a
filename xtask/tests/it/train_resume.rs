//! A training run killed with SIGKILL (during a rollout, during an update, in the middle of
//! writing a checkpoint) and resumed with `--resume` ends where the uninterrupted run ends: the
//! same final weights, the same metrics for every update, the same held-out results. At most
//! the round under way when it was killed is redone.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::common::{run_ok, tiny_code_model, tiny_train_config, xtask};
use serde_json::Value;

const ROUNDS: usize = 3;
const SIGKILL: i32 = 9;

fn train(config: &Path, resume: bool, kill_at: Option<&str>) -> std::process::Output {
    let mut command = xtask();
    command.args(["train", "--require-isolation", "false", "--config"]);
    command.arg(config);
    if resume {
        command.arg("--resume");
    }
    match kill_at {
        Some(point) => {
            command.env("MARS2_KILL_AT", point);
            command.output().expect("xtask starts")
        }
        None => run_ok(&mut command),
    }
}

/// Every update's figures that do not depend on timing.
fn metrics(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).expect("a JSON line");
            let object = v.as_object_mut().expect("an object");
            object.remove("rollout_tokens_per_second");
            if let Some(m) = object.get_mut("metrics").and_then(Value::as_object_mut) {
                m.remove("seconds");
            }
            v
        })
        .collect()
}

fn final_weights(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("checkpoints/latest/tiny-coder/model/model.safetensors"))
        .expect("the last checkpoint's weights")
}

fn held_out(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let summary: Value = serde_json::from_str(&text).expect("summary JSON");
    summary["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| (a["held_out_before"].clone(), a["held_out_after"].clone()))
        .map(|(b, a)| serde_json::json!([b, a]))
        .collect()
}

fn latest_round(out: &Path) -> Option<String> {
    std::fs::read_link(out.join("checkpoints/latest"))
        .ok()
        .map(|p| p.display().to_string())
}

#[test]
fn a_killed_run_resumes_to_the_same_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_code_model(dir.path());

    let full_out = dir.path().join("full");
    let full_config = dir.path().join("full.toml");
    std::fs::write(&full_config, tiny_train_config(&model, &full_out, ROUNDS)).unwrap();
    train(&full_config, false, None);
    let expected = metrics(&full_out);
    assert!(
        expected.len() >= ROUNDS,
        "an update every round: {expected:#?}"
    );
    assert!(
        expected
            .iter()
            .any(|m| m["metrics"]["grad_norm"].as_f64().unwrap_or(0.0) > 0.0),
        "the updates learn something: {expected:#?}"
    );

    for (point, committed_before) in [
        ("rollout:1", Some("round-0")),
        ("update:1", Some("round-0")),
        ("checkpoint:1", Some("round-0")),
        ("checkpoint:0", None),
    ] {
        let out = dir.path().join(point.replace(':', "-"));
        let config = dir.path().join(format!("{}.toml", point.replace(':', "-")));
        std::fs::write(&config, tiny_train_config(&model, &out, ROUNDS)).unwrap();
        let killed = train(&config, false, Some(point));
        assert_eq!(
            killed.status.signal(),
            Some(SIGKILL),
            "{point}: the run was not killed: {}",
            String::from_utf8_lossy(&killed.stderr)
        );
        // Only the round under way is lost.
        assert_eq!(latest_round(&out).as_deref(), committed_before, "{point}");
        train(&config, true, None);
        assert_eq!(metrics(&out), expected, "{point}: metrics differ");
        assert!(
            final_weights(&out) == final_weights(&full_out),
            "{point}: final weights differ"
        );
        assert_eq!(
            held_out(&out),
            held_out(&full_out),
            "{point}: held-out figures"
        );
    }
}
