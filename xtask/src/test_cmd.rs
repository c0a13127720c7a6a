//! `cargo xtask test`: the project's test command. Fetches the models the real-model tests
//! need (SmolLM2-135M and Qwen2.5-Coder-0.5B; the 1.5B test is opt-in), runs the whole
//! workspace's tests, and lists every test that skipped, with its reason, at the end.

use std::process::Command;

use anyhow::{bail, Context, Result};
use mars2_models::registry;

use crate::fetch_model::ensure_fetched;

/// Models the test suite reads.
const TEST_MODELS: [&registry::RegisteredModel; 2] =
    [&registry::SMOLLM2_135M, &registry::QWEN2_5_CODER_0_5B];

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Don't fetch models; tests that need a model that is not cached skip, and are listed.
    #[arg(long)]
    pub offline: bool,
    /// Extra arguments for `cargo test`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    let mut skip_missing = args.offline;
    if !args.offline {
        for model in TEST_MODELS {
            if let Err(e) = ensure_fetched(model) {
                eprintln!(
                    "warning: could not fetch {} ({e:#}); the tests that need it will skip",
                    model.name
                );
                skip_missing = true;
            }
        }
    }
    let skipped_log = tempfile::NamedTempFile::new().context("creating the skipped-tests log")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .env("MARS2_SKIPPED_LOG", skipped_log.path());
    if skip_missing {
        command.env("MARS2_SKIP_MISSING_MODELS", "1");
    }
    let status = command.status().context("running cargo test")?;
    let skipped = std::fs::read_to_string(skipped_log.path()).unwrap_or_default();
    let mut skipped: Vec<&str> = skipped.lines().collect();
    skipped.sort_unstable();
    if !skipped.is_empty() {
        eprintln!("\n{} tests skipped:", skipped.len());
        for line in &skipped {
            eprintln!("  {line}");
        }
    }
    if !status.success() {
        bail!("cargo test failed with {status}");
    }
    Ok(())
}
