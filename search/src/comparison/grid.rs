//! A comparison's settings as its configuration file names them: options every setting
//! shares (`[common]`), a grid whose every combination is one setting (`[grid]`), and
//! settings written out by hand (`[[setting]]`). An option is one flag of `cargo xtask eval`
//! without its dashes (`budget = 8`, `agent = ["a", "b"]` for a repeated flag, `multi_role =
//! true` for a switch); this module only combines them and names the settings, the command
//! line parses them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SearchError};

/// The value of one option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// A switch: present when true.
    Switch(bool),
    Integer(i64),
    Number(f64),
    Text(String),
    /// A flag given once per value (`--agent a --agent b`).
    Repeated(Vec<String>),
}

impl OptionValue {
    /// The value as a setting's name shows it.
    pub fn label(&self) -> String {
        match self {
            OptionValue::Switch(on) => on.to_string(),
            OptionValue::Integer(i) => i.to_string(),
            OptionValue::Number(x) => x.to_string(),
            OptionValue::Text(t) => t.clone(),
            OptionValue::Repeated(values) => values.join("+"),
        }
    }

    /// The value as a number, when it is one (a budget, a temperature).
    pub fn as_number(&self) -> Option<f64> {
        match self {
            OptionValue::Integer(i) => Some(*i as f64),
            OptionValue::Number(x) => Some(*x),
            _ => None,
        }
    }

    /// The command-line words of option `key` with this value.
    pub fn to_args(&self, key: &str) -> Vec<String> {
        let flag = format!("--{}", key.replace('_', "-"));
        match self {
            OptionValue::Switch(true) => vec![flag],
            OptionValue::Switch(false) => Vec::new(),
            OptionValue::Repeated(values) => values
                .iter()
                .flat_map(|v| [flag.clone(), v.clone()])
                .collect(),
            other => vec![flag, other.label()],
        }
    }
}

/// Options by name.
pub type Options = BTreeMap<String, OptionValue>;

/// A setting written out by hand.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamedSetting {
    pub name: String,
    #[serde(flatten)]
    pub options: Options,
}

/// What every setting of a comparison runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComparisonKind {
    /// `cargo xtask eval`; a setting's options are its flags without their dashes.
    #[default]
    Eval,
    /// A training run; a setting's options are keys of the training config, dotted by
    /// section (`algorithm`, `train.rounds`), over the file its `config` option names (the
    /// embedded default without one). Settings are measured on their held-out problems.
    Train,
}

/// A comparison's configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    /// A title for the report.
    #[serde(default)]
    pub title: Option<String>,
    /// What the settings run.
    #[serde(default)]
    pub kind: ComparisonKind,
    /// Training comparisons: the agent whose held-out results measure each setting (each
    /// setting's first agent when absent).
    #[serde(default)]
    pub measured_agent: Option<String>,
    /// Options of every setting.
    #[serde(default)]
    pub common: Options,
    /// Each option's values; every combination is one setting.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<OptionValue>>,
    /// Settings named by hand (after the grid's).
    #[serde(default)]
    pub setting: Vec<NamedSetting>,
}

/// One setting of a comparison: its name (also its run directory's) and every option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub options: Options,
    /// The options it varies from `[common]` (the grid's keys, or a named setting's own).
    pub varied: Options,
}

impl Setting {
    /// Whether the setting answers `filter`: its own name, or comma-separated `key=value`
    /// pairs that its options all carry (`budget=4`, `method=abmcts,budget=8`).
    pub fn matches(&self, filter: &str) -> bool {
        filter == self.name
            || filter.split(',').all(|pair| {
                pair.split_once('=').is_some_and(|(key, value)| {
                    self.options
                        .get(
                            key.trim()
                                .trim_start_matches("--")
                                .replace('-', "_")
                                .as_str(),
                        )
                        .is_some_and(|option| option.label() == value.trim())
                })
            })
    }

    /// The command-line words of every option, in name order.
    pub fn to_args(&self) -> Vec<String> {
        self.options
            .iter()
            .flat_map(|(key, value)| value.to_args(key))
            .collect()
    }
}

/// Options a setting may not set: the comparison owns them.
const RESERVED: &[&str] = &["out"];

impl ComparisonConfig {
    /// Every setting: the grid's combinations (the last key varying fastest, keys in name
    /// order), then the named settings. Names are unique and usable as directory names.
    pub fn settings(&self) -> Result<Vec<Setting>> {
        for key in self
            .common
            .keys()
            .chain(self.grid.keys())
            .chain(self.setting.iter().flat_map(|s| s.options.keys()))
        {
            if RESERVED.contains(&key.as_str()) {
                return Err(SearchError::Config(format!(
                    "option `{key}` is set by the comparison itself (each setting runs in its own directory)"
                )));
            }
        }
        let mut settings = Vec::new();
        if let Some((key, _)) = self.grid.iter().find(|(_, values)| values.is_empty()) {
            return Err(SearchError::Config(format!(
                "grid option `{key}` has no values"
            )));
        }
        let combinations: usize = if self.grid.is_empty() {
            0
        } else {
            self.grid.values().map(Vec::len).product()
        };
        for n in 0..combinations {
            // `n` in mixed radix, the last key its lowest digit.
            let mut rest = n;
            let mut varied = Options::new();
            for (key, values) in self.grid.iter().rev() {
                varied.insert(key.clone(), values[rest % values.len()].clone());
                rest /= values.len();
            }
            let name = varied
                .iter()
                .map(|(k, v)| format!("{k}={}", v.label()))
                .collect::<Vec<_>>()
                .join(",");
            settings.push(self.setting_of(name, varied));
        }
        for named in &self.setting {
            settings.push(self.setting_of(named.name.clone(), named.options.clone()));
        }
        if settings.is_empty() {
            return Err(SearchError::Config(
                "the comparison has no settings: give a [grid] or [[setting]] tables".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for setting in &settings {
            check_name(&setting.name)?;
            if !seen.insert(setting.name.as_str()) {
                return Err(SearchError::Config(format!(
                    "two settings are named `{}`",
                    setting.name
                )));
            }
        }
        Ok(settings)
    }

    fn setting_of(&self, name: String, varied: Options) -> Setting {
        let mut options = self.common.clone();
        options.extend(varied.clone());
        Setting {
            name,
            options,
            varied,
        }
    }
}

/// A setting's name is its directory's: no separators, nothing hidden, not empty.
fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '\0') || c.is_control());
    if bad {
        return Err(SearchError::Config(format!(
            "`{name}` cannot name a setting's directory (empty, hidden, or holding a path separator)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> ComparisonConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_filter_picks_settings_by_name_or_by_options() {
        let c = config(serde_json::json!({
            "common": {"benchmark": "humaneval", "agent": ["a"], "samples": 0},
            "grid": {"method": ["sample", "abmcts"], "budget": [1, 4, 16]},
            "setting": [{"name": "team", "method": "abmcts", "budget": 4, "agent": ["a", "b"]}],
        }));
        let settings = c.settings().unwrap();
        let picked = |filter: &str| -> Vec<&str> {
            settings
                .iter()
                .filter(|s| s.matches(filter))
                .map(|s| s.name.as_str())
                .collect()
        };
        // `budget=1` is not a prefix match: budget 16 stays out.
        assert_eq!(
            picked("budget=1"),
            ["budget=1,method=sample", "budget=1,method=abmcts"]
        );
        assert_eq!(
            picked("method=abmcts,budget=4"),
            ["budget=4,method=abmcts", "team"]
        );
        assert_eq!(picked("team"), ["team"]);
        assert_eq!(picked("agent=a+b"), ["team"]);
        assert!(picked("budget=2").is_empty());
        assert!(picked("nonsense").is_empty());
    }

    #[test]
    fn the_grid_gives_every_combination_the_last_key_fastest() {
        let c = config(serde_json::json!({
            "common": {"benchmark": "humaneval", "agent": ["a", "b"], "samples": 0},
            "grid": {"method": ["sample", "abmcts"], "budget": [1, 2, 4]},
            "setting": [{"name": "team", "method": "abmcts", "budget": 8, "multi_role": true}],
        }));
        let settings = c.settings().unwrap();
        let names: Vec<&str> = settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "budget=1,method=sample",
                "budget=1,method=abmcts",
                "budget=2,method=sample",
                "budget=2,method=abmcts",
                "budget=4,method=sample",
                "budget=4,method=abmcts",
                "team",
            ]
        );
        assert_eq!(
            settings[1].to_args(),
            [
                "--agent",
                "a",
                "--agent",
                "b",
                "--benchmark",
                "humaneval",
                "--budget",
                "1",
                "--method",
                "abmcts",
                "--samples",
                "0"
            ]
        );
        assert_eq!(settings[1].varied.len(), 2);
        assert!(settings[6].to_args().contains(&"--multi-role".to_string()));
        assert_eq!(settings[6].options["budget"].as_number(), Some(8.0));
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let empty = ComparisonConfig::default().settings().unwrap_err();
        assert!(empty.to_string().contains("no settings"), "{empty}");
        let no_values = config(serde_json::json!({"grid": {"budget": []}}));
        assert!(no_values
            .settings()
            .unwrap_err()
            .to_string()
            .contains("`budget`"));
        let out = config(serde_json::json!({"common": {"out": "x"}, "grid": {"budget": [1]}}));
        assert!(out.settings().unwrap_err().to_string().contains("`out`"));
        let twice = config(serde_json::json!({"setting": [{"name": "a"}, {"name": "a"}]}));
        assert!(twice
            .settings()
            .unwrap_err()
            .to_string()
            .contains("two settings"));
        let path = config(serde_json::json!({"setting": [{"name": "../a"}]}));
        assert!(path.settings().unwrap_err().to_string().contains("../a"));
        let unknown: std::result::Result<ComparisonConfig, _> =
            serde_json::from_value(serde_json::json!({"grids": {}}));
        assert!(unknown.is_err());
    }

    #[test]
    fn a_switch_set_false_gives_no_flag() {
        assert!(OptionValue::Switch(false).to_args("multi_role").is_empty());
        assert_eq!(
            OptionValue::Number(0.5).to_args("top_p"),
            ["--top-p", "0.5"]
        );
    }
}
