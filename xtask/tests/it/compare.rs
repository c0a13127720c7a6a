//! `cargo xtask compare` on the tiny code model: every setting of the grid runs as an eval in
//! its own directory, the figures and pairs land in comparison.json, report.html and the
//! budget plots; a second run resumes every setting and writes the same figures; `--only`
//! reports a part of the grid; a setting that does not parse is refused before anything runs.

use std::path::Path;

use crate::common::{run_ok, tiny_code_model, xtask};

fn config(model: &Path, extra: &str) -> String {
    format!(
        r#"title = "tiny comparison"

[common]
benchmark = "mbpp"
agent = [{model:?}]
limit = 2
samples = 1
max_new_tokens = 1
{extra}
[grid]
method = ["sample", "abmcts"]
budget = [1, 2]
"#,
        model = model.display().to_string()
    )
}

#[test]
fn a_grid_runs_resumes_and_reports_with_intervals() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_code_model(dir.path());
    let file = dir.path().join("compare.toml");
    std::fs::write(&file, config(&model, "")).expect("config");
    let out = dir.path().join("cmp");
    let compare = || {
        let mut command = xtask();
        command
            .args(["compare", "--config"])
            .arg(&file)
            .arg("--out")
            .arg(&out);
        run_ok(&mut command)
    };
    let first = compare();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("budget=2,method=abmcts"), "{stdout}");

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("comparison.json")).expect("comparison.json"),
    )
    .expect("JSON");
    let settings = json["settings"].as_array().expect("settings");
    assert_eq!(settings.len(), 4);
    for s in settings {
        assert_eq!(s["problems"], 2, "{s}");
        let pass = &s["metrics"]["pass1_mcts"];
        let (low, high) = (
            pass["low"].as_f64().unwrap(),
            pass["high"].as_f64().unwrap(),
        );
        assert!(
            (0.0..=1.0).contains(&low) && low <= high && high <= 1.0,
            "{s}"
        );
    }
    // Every pair of the four settings, on the two problems they share.
    let pairs = json["pairs"].as_array().expect("pairs");
    let pass_pairs: Vec<_> = pairs
        .iter()
        .filter(|p| p["metric"] == "pass1_mcts")
        .collect();
    assert_eq!(pass_pairs.len(), 6);
    assert!(pass_pairs.iter().all(|p| p["problems"] == 2));
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("tiny comparison") && html.contains("budget=1,method=sample"));
    for plot in ["pass1_mcts_by_budget.png", "pass_n_by_budget.png"] {
        let bytes = std::fs::read(out.join(plot)).expect(plot);
        assert_eq!(&bytes[..4], b"\x89PNG", "{plot}");
        assert!(html.contains(plot));
    }

    // A second run resumes every setting (nothing left to do) and reports the same figures.
    let second = compare();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        stderr.matches("2 problems done, 0 to go").count(),
        4,
        "{stderr}"
    );
    let again = std::fs::read_to_string(out.join("comparison.json")).expect("comparison.json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again).expect("JSON"),
        json
    );

    // `--only` reports a part of the grid: here the two settings of budget 2.
    let mut command = xtask();
    command
        .args(["compare", "--report-only", "--only", "budget=2", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out);
    run_ok(&mut command);
    let part: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("comparison.json")).expect("comparison.json"),
    )
    .expect("JSON");
    let names: Vec<&str> = part["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["budget=2,method=sample", "budget=2,method=abmcts"]);
}

#[test]
fn a_setting_that_does_not_parse_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = dir.path().join("no-model");
    let file = dir.path().join("compare.toml");
    std::fs::write(&file, config(&model, "budgett = 3\n")).expect("config");
    let out = dir.path().join("cmp");
    let output = xtask()
        .args(["compare", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("xtask starts");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("compare.toml") && stderr.contains("budget=1,method=sample"),
        "{stderr}"
    );
    assert!(stderr.contains("--budgett"), "{stderr}");
    assert!(!out.exists(), "nothing is created for a bad configuration");
}
