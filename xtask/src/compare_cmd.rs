//! `cargo xtask compare --config FILE --out DIR`: runs every setting of a comparison in
//! `DIR/settings/NAME` (an ordinary `eval`, or a training run for `kind = "train"`;
//! rerunning resumes each where it stopped), then writes `comparison.json`, `report.html`
//! and the plots into `DIR`. `--report-only` skips the runs and reports on what the
//! directories hold; `--only` picks settings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use mars2_search::comparison::{
    compare, render_comparison, Comparison, ComparisonConfig, ComparisonKind, Metric,
    ProblemValues, Setting, SettingResult,
};
use mars2_search::records::{read_records, write_atomically, TREES_FILE};

use crate::compare_train;
use crate::error_text::error_text;
use crate::eval_cmd::{self, EvalArgs};
use crate::plots::{write_compared_curves, write_interval_plot, ComparedRun, IntervalLine};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The comparison's TOML file: `[common]` options, a `[grid]` of option values, and
    /// `[[setting]]` tables, each option a flag of `cargo xtask eval` without its dashes.
    #[arg(long)]
    pub config: PathBuf,
    /// The comparison's directory (created; an existing one is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// Report on the runs already in `--out` without running anything.
    #[arg(long)]
    pub report_only: bool,
    /// Only the settings this names (repeatable): a setting's name, or `key=value` pairs
    /// separated by commas that its options all carry (`--only budget=4`,
    /// `--only method=abmcts,budget=8`). The report covers the same settings.
    #[arg(long, value_name = "FILTER")]
    pub only: Vec<String>,
}

/// `cargo xtask eval`'s arguments, parsed from a setting's options.
#[derive(Parser, Debug)]
#[command(name = "setting", no_binary_name = true)]
struct SettingCli {
    #[command(flatten)]
    eval: EvalArgs,
}

/// Metrics plotted against the budget.
const PLOTTED: [(Metric, &str); 2] = [
    (Metric::Pass1Mcts, "pass1_mcts_by_budget"),
    (Metric::PassN, "pass_n_by_budget"),
];

pub fn run(args: CompareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: ComparisonConfig =
        toml::from_str(&text).with_context(|| format!("{}", args.config.display()))?;
    let mut settings = config
        .settings()
        .with_context(|| format!("{}", args.config.display()))?;
    if !args.only.is_empty() {
        settings.retain(|s| args.only.iter().any(|filter| s.matches(filter)));
        if settings.is_empty() {
            bail!(
                "{}: no setting answers --only {}",
                args.config.display(),
                args.only.join(" --only ")
            );
        }
    }
    let Measured {
        settings: measured,
        failed,
        curves,
    } = match config.kind {
        ComparisonKind::Eval => run_evals(&args, &settings)?,
        ComparisonKind::Train => run_trainings(&args, &config, &settings)?,
    };
    let title = config
        .title
        .clone()
        .unwrap_or_else(|| format!("comparison of {} settings", settings.len()));
    let comparison = compare(&title, &measured);
    let mut plots = write_budget_plots(&args.out, &comparison.settings)?;
    if !curves.is_empty() {
        plots.extend(write_compared_curves(&curves, &args.out)?);
    }
    write_atomically(
        &args.out.join("comparison.json"),
        &serde_json::to_string_pretty(&comparison)?,
    )?;
    write_atomically(
        &args.out.join("report.html"),
        &render_comparison(&comparison, &plots),
    )?;
    print_table(&comparison);
    println!("wrote {}", args.out.join("report.html").display());
    if !failed.is_empty() {
        bail!(
            "{} settings did not finish (rerun the same command to resume them): {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// What the settings' runs hold.
struct Measured {
    /// Each setting with its finished problems.
    settings: Vec<(Setting, Vec<ProblemValues>)>,
    /// The settings that failed this time.
    failed: Vec<String>,
    /// Learning curves of the finished training runs.
    curves: Vec<ComparedRun>,
}

fn setting_dir(args: &CompareArgs, setting: &Setting) -> PathBuf {
    args.out.join("settings").join(&setting.name)
}

fn create_out(args: &CompareArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))
}

/// Runs the settings as evals (unless `--report-only`) and reads their trees. Every setting
/// is parsed before the first one runs, so a typo costs nothing.
fn run_evals(args: &CompareArgs, settings: &[Setting]) -> Result<Measured> {
    let mut runs = Vec::new();
    for setting in settings {
        let dir = setting_dir(args, setting);
        let mut words = setting.to_args();
        words.extend(["--out".to_string(), dir.display().to_string()]);
        let cli = SettingCli::try_parse_from(&words).map_err(|e| {
            anyhow::anyhow!(
                "{}: setting `{}`: {}",
                args.config.display(),
                setting.name,
                e.render()
            )
        })?;
        runs.push((setting, cli.eval, dir));
    }
    create_out(args)?;
    let mut failed = Vec::new();
    if !args.report_only {
        for (i, (setting, eval, _)) in runs.iter().enumerate() {
            eprintln!("── setting {}/{}: {}", i + 1, runs.len(), setting.name);
            if let Err(e) = eval_cmd::run(eval.clone()) {
                eprintln!("setting {} failed: {}", setting.name, error_text(&e));
                failed.push(setting.name.clone());
            }
        }
    }
    let mut measured = Vec::new();
    for (setting, _, dir) in &runs {
        let records = read_records(&dir.join(TREES_FILE))?;
        let values: Vec<ProblemValues> = records.iter().map(ProblemValues::from).collect();
        measured.push(((*setting).clone(), values));
    }
    Ok(Measured {
        settings: measured,
        failed,
        curves: Vec::new(),
    })
}

/// Runs the settings as training runs (unless `--report-only`) and reads their held-out
/// results, with the learning curves of those that finished. Every setting's config is built
/// before the first one runs.
fn run_trainings(
    args: &CompareArgs,
    config: &ComparisonConfig,
    settings: &[Setting],
) -> Result<Measured> {
    let mut runs = Vec::new();
    for setting in settings {
        let train = compare_train::train_config(setting, &setting_dir(args, setting))
            .with_context(|| format!("{}: setting `{}`", args.config.display(), setting.name))?;
        runs.push((setting, train));
    }
    create_out(args)?;
    let failed = if args.report_only {
        Vec::new()
    } else {
        compare_train::run_settings(&runs)
    };
    let (mut measured, mut curves) = (Vec::new(), Vec::new());
    for (setting, train) in &runs {
        let results =
            compare_train::held_out_values(setting, train, config.measured_agent.as_deref())?;
        if let Some(results) = &results {
            curves.push(ComparedRun {
                label: setting.name.clone(),
                metrics: train.out.join("metrics.jsonl"),
                agent: results.agent.clone(),
            });
        }
        let problems = results.map(|r| r.problems).unwrap_or_default();
        measured.push(((*setting).clone(), problems));
    }
    Ok(Measured {
        settings: measured,
        failed,
        curves,
    })
}

/// One PNG per plotted metric when the settings vary the budget: a line per combination of
/// their other varied options, each point with its interval.
fn write_budget_plots(out: &Path, settings: &[SettingResult]) -> Result<Vec<String>> {
    let budgets: std::collections::BTreeSet<u64> = settings
        .iter()
        .filter_map(|s| s.varied.get("budget")?.as_number())
        .map(f64::to_bits)
        .collect();
    if budgets.len() < 2 {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for (metric, stem) in PLOTTED {
        let mut lines: Vec<IntervalLine> = Vec::new();
        for s in settings {
            let (Some(budget), Some(interval)) = (
                s.varied.get("budget").and_then(|v| v.as_number()),
                s.metrics.get(&metric),
            ) else {
                continue;
            };
            let label = line_label(s);
            let point = (budget, interval.scaled(100.0));
            match lines.iter_mut().find(|(l, _)| *l == label) {
                Some((_, points)) => points.push(point),
                None => lines.push((label, vec![point])),
            }
        }
        for (_, points) in &mut lines {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        if lines.is_empty() {
            continue;
        }
        let file = format!("{stem}.png");
        write_interval_plot(
            &out.join(&file),
            &format!("{} by node budget (95 % intervals)", metric.label()),
            "nodes per tree",
            &format!("{} (%)", metric.label()),
            &lines,
        )?;
        written.push(file);
    }
    Ok(written)
}

/// What tells a setting's line apart: its varied options but the budget.
fn line_label(setting: &SettingResult) -> String {
    let parts: Vec<String> = setting
        .varied
        .iter()
        .filter(|(k, _)| k.as_str() != "budget")
        .map(|(k, v)| format!("{k}={}", v.label()))
        .collect();
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(", ")
    }
}

fn print_table(comparison: &Comparison) {
    let width = comparison
        .settings
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let metrics = comparison.metrics();
    println!("{}", comparison.title);
    let mut header = format!("{:<width$}  {:>8}", "setting", "problems");
    for m in &metrics {
        header.push_str(&format!("  {:>24}", m.label()));
    }
    println!("{header}");
    for s in &comparison.settings {
        let mut line = format!("{:<width$}  {:>8}", s.name, s.problems);
        for m in &metrics {
            let cell = s.metrics.get(m).map_or("–".to_string(), |i| {
                if m.is_rate() {
                    let i = i.scaled(100.0);
                    format!("{:.1}% [{:.1}, {:.1}]", i.estimate, i.low, i.high)
                } else {
                    format!("{:.0} [{:.0}, {:.0}]", i.estimate, i.low, i.high)
                }
            });
            line.push_str(&format!("  {cell:>24}"));
        }
        println!("{line}");
    }
}
