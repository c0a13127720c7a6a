//! The figures of a comparison: per setting, each metric's mean over its problems with a 95 %
//! bootstrap interval; per pair of settings, the mean paired difference over the problems both
//! finished, with its interval. Everything is seeded, so the same runs give the same file.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::grid::{Options, Setting};
use crate::intervals::{bootstrap_mean, paired_difference, Interval, BOOTSTRAP_RESAMPLES};
use crate::records::ProblemRecord;

/// A figure measured per problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The hidden verdict of the answer the search picks.
    Pass1Mcts,
    /// Some node of the tree passes the hidden tests.
    PassN,
    /// Unbiased Pass@1 of the fresh samples (settings with samples only).
    Pass1,
    /// Tokens generated for the problem, tree and samples.
    Tokens,
    /// Seconds the problem took.
    WallSeconds,
    /// A training run's held-out problem: the fraction of its answers that passed before
    /// training, after training, and the change (after − before).
    HeldOutBefore,
    HeldOutAfter,
    HeldOutChange,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Pass1Mcts,
        Metric::PassN,
        Metric::Pass1,
        Metric::Tokens,
        Metric::WallSeconds,
        Metric::HeldOutBefore,
        Metric::HeldOutAfter,
        Metric::HeldOutChange,
    ];

    /// Its name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Pass1Mcts => "Pass@1(MCTS)",
            Metric::PassN => "Pass@N",
            Metric::Pass1 => "Pass@1",
            Metric::Tokens => "tokens",
            Metric::WallSeconds => "wall s",
            Metric::HeldOutBefore => "held-out before",
            Metric::HeldOutAfter => "held-out after",
            Metric::HeldOutChange => "held-out change",
        }
    }

    /// A fraction of answers (reports show it in percent, or in points for a change).
    pub fn is_rate(self) -> bool {
        !matches!(self, Metric::Tokens | Metric::WallSeconds)
    }
}

/// What a comparison reads of one finished problem: its id (pairs match problems by it) and
/// the metrics it has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProblemValues {
    pub problem_id: String,
    pub values: BTreeMap<Metric, f64>,
}

impl ProblemValues {
    /// Its value of `metric`; `None` when the problem does not have it.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.values.get(&metric).copied()
    }

    /// A training run's held-out problem from the fractions of its answers that passed
    /// before and after training (either `None` when nothing was judged).
    pub fn held_out(problem_id: String, before: Option<f64>, after: Option<f64>) -> Self {
        let mut values = BTreeMap::new();
        let pairs = [
            (Metric::HeldOutBefore, before),
            (Metric::HeldOutAfter, after),
        ];
        values.extend(pairs.iter().filter_map(|&(m, v)| Some((m, v?))));
        if let (Some(before), Some(after)) = (before, after) {
            values.insert(Metric::HeldOutChange, after - before);
        }
        ProblemValues { problem_id, values }
    }
}

impl From<&ProblemRecord> for ProblemValues {
    fn from(record: &ProblemRecord) -> Self {
        let m = &record.metrics;
        let mut values = BTreeMap::from([
            (Metric::Pass1Mcts, f64::from(u8::from(m.pass1_mcts))),
            (Metric::PassN, f64::from(u8::from(m.pass_n))),
            (Metric::Tokens, m.tokens_generated as f64),
            (Metric::WallSeconds, record.wall_seconds),
        ]);
        if let Some(pass1) = m.pass1 {
            values.insert(Metric::Pass1, pass1);
        }
        ProblemValues {
            problem_id: record.problem_id.clone(),
            values,
        }
    }
}

/// One setting's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingResult {
    pub name: String,
    pub options: Options,
    pub varied: Options,
    /// Problems finished.
    pub problems: usize,
    /// Each metric the problems have: the mean and its 95 % interval.
    pub metrics: BTreeMap<Metric, Interval>,
}

/// The paired difference `b − a` of one metric over the problems both settings finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    pub a: String,
    pub b: String,
    pub metric: Metric,
    pub problems: usize,
    pub difference: Interval,
    /// The interval lies on one side of zero.
    pub excludes_zero: bool,
}

/// A comparison's figures, as `comparison.json` holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub title: String,
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    pub settings: Vec<SettingResult>,
    pub pairs: Vec<PairResult>,
}

impl Comparison {
    /// The metrics some setting has, in [`Metric::ALL`]'s order.
    pub fn metrics(&self) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|m| self.settings.iter().any(|s| s.metrics.contains_key(m)))
            .collect()
    }
}

/// Seed of every bootstrap: fixed, so a report is reproducible.
const SEED: u64 = 0x5eed;

/// The figures of `runs` (each setting with its finished problems).
pub fn compare(title: &str, runs: &[(Setting, Vec<ProblemValues>)]) -> Comparison {
    let settings = runs
        .iter()
        .map(|(setting, problems)| SettingResult {
            name: setting.name.clone(),
            options: setting.options.clone(),
            varied: setting.varied.clone(),
            problems: problems.len(),
            metrics: Metric::ALL
                .iter()
                .filter_map(|&metric| {
                    let values: Vec<f64> = problems.iter().filter_map(|p| p.get(metric)).collect();
                    bootstrap_mean(&values, BOOTSTRAP_RESAMPLES, SEED).map(|i| (metric, i))
                })
                .collect(),
        })
        .collect();
    let mut pairs = Vec::new();
    for (i, (a, a_problems)) in runs.iter().enumerate() {
        for (b, b_problems) in &runs[i + 1..] {
            let b_by_id: HashMap<&str, &ProblemValues> = b_problems
                .iter()
                .map(|p| (p.problem_id.as_str(), p))
                .collect();
            for metric in Metric::ALL {
                let (before, after): (Vec<f64>, Vec<f64>) = a_problems
                    .iter()
                    .filter_map(|p| {
                        let q = b_by_id.get(p.problem_id.as_str())?;
                        Some((p.get(metric)?, q.get(metric)?))
                    })
                    .unzip();
                if let Some(difference) = paired_difference(&before, &after, SEED) {
                    pairs.push(PairResult {
                        a: a.name.clone(),
                        b: b.name.clone(),
                        metric,
                        problems: before.len(),
                        difference,
                        excludes_zero: difference.excludes_zero(),
                    });
                }
            }
        }
    }
    Comparison {
        title: title.to_string(),
        confidence: 0.95,
        bootstrap_resamples: BOOTSTRAP_RESAMPLES,
        settings,
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comparison::grid::OptionValue;

    fn setting(name: &str) -> Setting {
        Setting {
            name: name.into(),
            options: Options::new(),
            varied: Options::from([("budget".to_string(), OptionValue::Integer(1))]),
        }
    }

    fn problems(passes: &[bool], pass1: Option<f64>) -> Vec<ProblemValues> {
        passes
            .iter()
            .enumerate()
            .map(|(i, &pass)| {
                let pass = f64::from(u8::from(pass));
                let mut values = BTreeMap::from([
                    (Metric::Pass1Mcts, pass),
                    (Metric::PassN, pass),
                    (Metric::Tokens, 100.0 + i as f64),
                    (Metric::WallSeconds, 1.0),
                ]);
                values.extend(pass1.map(|p| (Metric::Pass1, p)));
                ProblemValues {
                    problem_id: format!("p{i}"),
                    values,
                }
            })
            .collect()
    }

    #[test]
    fn pairs_are_taken_over_the_problems_both_settings_finished() {
        // a solves none of 40, b solves the first 30; b has 10 more problems a never ran.
        let a = problems(&[false; 40], None);
        let mut b = problems(&[[true; 30].as_slice(), &[false; 20]].concat(), Some(0.5));
        b.reverse();
        let c = compare("t", &[(setting("a"), a), (setting("b"), b)]);
        assert_eq!(c.settings[0].problems, 40);
        assert_eq!(c.settings[1].problems, 50);
        assert_eq!(c.settings[1].metrics[&Metric::Pass1Mcts].estimate, 0.6);
        // Pass@1 is absent where there were no samples, and so is its pair.
        assert!(!c.settings[0].metrics.contains_key(&Metric::Pass1));
        assert!(c.pairs.iter().all(|p| p.metric != Metric::Pass1));
        let pass = c
            .pairs
            .iter()
            .find(|p| p.metric == Metric::Pass1Mcts)
            .unwrap();
        assert_eq!(
            (pass.a.as_str(), pass.b.as_str(), pass.problems),
            ("a", "b", 40)
        );
        assert!((pass.difference.estimate - 0.75).abs() < 1e-12);
        assert!(pass.excludes_zero && pass.difference.low > 0.5);
        let tokens = c.pairs.iter().find(|p| p.metric == Metric::Tokens).unwrap();
        assert_eq!(tokens.difference.estimate, 0.0);
        assert!(!tokens.excludes_zero);
    }

    #[test]
    fn the_same_runs_give_the_same_figures_and_json_reads_back() {
        let runs = [
            (setting("a"), problems(&[true, false, true, false], None)),
            (setting("b"), problems(&[true, true, false, false], None)),
        ];
        let c = compare("t", &runs);
        assert_eq!(c, compare("t", &runs));
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"pass1_mcts\""), "{json}");
        let back: Comparison = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
