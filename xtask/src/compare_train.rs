//! The training settings of `cargo xtask compare` (`kind = "train"`): each setting is a
//! training config (a base file, or the embedded default, with the setting's dotted keys
//! over it) run in its own directory, resumed from its checkpoints when it stopped early
//! and skipped when its `summary.json` is there; it is measured by one agent's held-out
//! problems before and after training.

use std::path::Path;

use anyhow::{bail, Context, Result};
use mars2_rl::parallel::Parallel;
use mars2_rl::training::{TrainConfig, TrainSummary};
use mars2_search::comparison::{OptionValue, ProblemValues, Setting};

use crate::error_text::error_text;
use crate::train_cmd;

/// The option that names a setting's base config file.
const BASE_CONFIG: &str = "config";

/// The file a finished run leaves.
const SUMMARY_FILE: &str = "summary.json";

/// A setting's training config, run in `dir`.
pub fn train_config(setting: &Setting, dir: &Path) -> Result<TrainConfig> {
    let base = match setting.options.get(BASE_CONFIG) {
        Some(OptionValue::Text(path)) => TrainConfig::from_file(Path::new(path))?,
        Some(other) => bail!(
            "`{BASE_CONFIG}` names a training config file, not `{}`",
            other.label()
        ),
        None => TrainConfig::default(),
    };
    let overrides: Vec<(String, toml::Value)> = setting
        .options
        .iter()
        .filter(|(key, _)| key.as_str() != BASE_CONFIG)
        .map(|(key, value)| (key.clone(), toml_value(value)))
        .collect();
    let mut config = base.with_overrides(&overrides)?;
    config.out = dir.to_path_buf();
    Ok(config)
}

fn toml_value(value: &OptionValue) -> toml::Value {
    match value {
        OptionValue::Switch(on) => toml::Value::Boolean(*on),
        OptionValue::Integer(i) => toml::Value::Integer(*i),
        OptionValue::Number(x) => toml::Value::Float(*x),
        OptionValue::Text(t) => toml::Value::String(t.clone()),
        OptionValue::Repeated(values) => {
            toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect())
        }
    }
}

/// Runs each setting not yet finished; the names of those that failed.
pub fn run_settings(settings: &[(&Setting, TrainConfig)]) -> Vec<String> {
    let mut failed = Vec::new();
    for (i, (setting, config)) in settings.iter().enumerate() {
        if config.out.join(SUMMARY_FILE).exists() {
            eprintln!(
                "── setting {}/{}: {} (finished earlier)",
                i + 1,
                settings.len(),
                setting.name
            );
            continue;
        }
        eprintln!("── setting {}/{}: {}", i + 1, settings.len(), setting.name);
        let resume = config.out.join("config.toml").exists();
        if let Err(e) = train_cmd::train(config.clone(), resume, true, Parallel::default()) {
            eprintln!("setting {} failed: {}", setting.name, error_text(&e));
            failed.push(setting.name.clone());
        }
    }
    failed
}

/// What a finished training setting is measured by.
#[derive(Debug)]
pub struct HeldOutResults {
    /// The measured agent's held-out problems.
    pub problems: Vec<ProblemValues>,
    /// The measured agent as the run's files name it.
    pub agent: String,
}

/// The held-out problems of a finished setting, measured by `measured_agent` (the setting's
/// first agent when `None`); `None` when the run has not finished.
pub fn held_out_values(
    setting: &Setting,
    config: &TrainConfig,
    measured_agent: Option<&str>,
) -> Result<Option<HeldOutResults>> {
    let path = config.out.join(SUMMARY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let summary: TrainSummary =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let index = match measured_agent {
        None => 0,
        Some(name) => config
            .agents
            .iter()
            .position(|a| a == name)
            .with_context(|| {
                format!(
                    "setting `{}` does not train the measured agent `{name}` (its agents: {})",
                    setting.name,
                    config.agents.join(", ")
                )
            })?,
    };
    let agent = summary.agents.get(index).with_context(|| {
        format!(
            "{}: no agent {} in the summary ({} agents)",
            path.display(),
            index + 1,
            summary.agents.len()
        )
    })?;
    let before = agent.held_out_before.problem_rates();
    let after = agent.held_out_after.problem_rates();
    let problems = before
        .into_iter()
        .zip(after)
        .enumerate()
        .map(|(i, (before, after))| ProblemValues::held_out(format!("held-out {i}"), before, after))
        .collect();
    Ok(Some(HeldOutResults {
        problems,
        agent: agent.agent.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mars2_rl::training::Algorithm;
    use mars2_search::comparison::ComparisonConfig;

    #[test]
    fn a_setting_becomes_the_default_config_with_its_keys_over_it() {
        let config: ComparisonConfig = toml::from_str(
            r#"
            kind = "train"
            [common]
            "data.eval_problems" = 200
            "train.lr" = 5e-5
            [grid]
            algorithm = ["grpo", "mars2-heter"]
            "#,
        )
        .unwrap();
        let settings = config.settings().unwrap();
        let dir = Path::new("runs/c/settings/x");
        let grpo = train_config(&settings[0], dir).unwrap();
        assert_eq!(grpo.algorithm, Algorithm::Grpo);
        assert_eq!((grpo.data.eval_problems, grpo.train.lr), (200, 5e-5));
        assert_eq!(grpo.out, dir);
        let heter = train_config(&settings[1], dir).unwrap();
        assert_eq!(heter.algorithm, Algorithm::Mars2Heter);
        assert_eq!(heter.agents, TrainConfig::default().agents);
    }

    #[test]
    fn the_checked_in_training_comparison_makes_valid_configs() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/compare-training.toml");
        let config: ComparisonConfig =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config.kind, mars2_search::comparison::ComparisonKind::Train);
        let measured = config.measured_agent.as_deref().unwrap();
        let settings = config.settings().unwrap();
        let algorithms: Vec<Algorithm> = settings
            .iter()
            .map(|s| {
                let train = train_config(s, Path::new("x")).unwrap();
                assert!(train.agents.iter().any(|a| a == measured), "{}", s.name);
                assert!(train.data.eval_problems >= 200);
                train.algorithm
            })
            .collect();
        assert_eq!(
            algorithms,
            [Algorithm::Grpo, Algorithm::Mars2, Algorithm::Mars2Heter]
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let config: ComparisonConfig = toml::from_str(
            r#"
            kind = "train"
            [[setting]]
            name = "typo"
            "train.round" = 3
            [[setting]]
            name = "bad-base"
            config = 3
            "#,
        )
        .unwrap();
        let settings = config.settings().unwrap();
        let err = format!(
            "{:#}",
            train_config(&settings[0], Path::new("x")).unwrap_err()
        );
        assert!(err.contains("train.round"), "{err}");
        let err = format!(
            "{:#}",
            train_config(&settings[1], Path::new("x")).unwrap_err()
        );
        assert!(
            err.contains("`config` names a training config file"),
            "{err}"
        );
    }

    #[test]
    fn an_unfinished_setting_has_no_problems_and_a_finished_one_its_agents_results() {
        let dir = tempfile::tempdir().unwrap();
        let config: ComparisonConfig =
            toml::from_str("kind = \"train\"\n[[setting]]\nname = \"a\"\n").unwrap();
        let settings = config.settings().unwrap();
        let train = train_config(&settings[0], dir.path()).unwrap();
        assert!(held_out_values(&settings[0], &train, None)
            .unwrap()
            .is_none());
        let held_out = |per_problem: Vec<[usize; 2]>| mars2_rl::training::HeldOut {
            passed: per_problem.iter().map(|p| p[0]).sum(),
            judged: per_problem.iter().map(|p| p[1]).sum(),
            sandbox_failures: 0,
            per_problem,
        };
        let agent = |name: &str, after: Vec<[usize; 2]>| mars2_rl::training::AgentSummary {
            agent: name.into(),
            updates: 1,
            left_over_samples: 0,
            pass_rate_before: 0.0,
            pass_rate_after: 0.0,
            held_out_before: held_out(vec![[0, 1], [1, 1], [0, 0]]),
            held_out_after: held_out(after),
            interval_before: None,
            interval_after: None,
            change: None,
            model: "m".into(),
        };
        let summary = TrainSummary {
            algorithm: Algorithm::Mars2Heter,
            train_problems: 8,
            held_out_problems: 3,
            wall_seconds: 1.0,
            isolation: Default::default(),
            agents: vec![
                agent("first", vec![[1, 1], [1, 1], [0, 0]]),
                agent("second", vec![[0, 1], [0, 1], [1, 1]]),
            ],
        };
        std::fs::write(
            dir.path().join(SUMMARY_FILE),
            serde_json::to_string(&summary).unwrap(),
        )
        .unwrap();
        let first = held_out_values(&settings[0], &train, None)
            .unwrap()
            .unwrap();
        assert_eq!(first.agent, "first");
        let first = first.problems;
        assert_eq!(first.len(), 3);
        assert_eq!(first[0].problem_id, "held-out 0");
        use mars2_search::comparison::Metric;
        assert_eq!(first[0].get(Metric::HeldOutChange), Some(1.0));
        assert_eq!(first[1].get(Metric::HeldOutChange), Some(0.0));
        // A problem with no judged answer has no values.
        assert!(first[2].values.is_empty());
        let second = held_out_values(&settings[0], &train, Some(&train.agents[1]))
            .unwrap()
            .unwrap()
            .problems;
        assert_eq!(second[1].get(Metric::HeldOutAfter), Some(0.0));
        assert_eq!(second[2].get(Metric::HeldOutAfter), Some(1.0));
        let err = held_out_values(&settings[0], &train, Some("nobody"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not train the measured agent `nobody`"),
            "{err}"
        );
    }
}
