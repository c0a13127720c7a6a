//! `cargo xtask test`: the project's test command. Fetches the reference model (so the
//! real-model parity tests run rather than skip), then runs the whole workspace's tests.

use std::process::Command;

use anyhow::{bail, Context, Result};
use mars2_models::registry;

use crate::fetch_model::ensure_fetched;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Don't fetch the reference model; tests that need it skip with a message.
    #[arg(long)]
    pub offline: bool,
    /// Extra arguments for `cargo test`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    if !args.offline {
        for model in registry::REGISTERED_MODELS {
            if let Err(e) = ensure_fetched(model) {
                eprintln!(
                    "warning: could not fetch {} ({e:#}); its tests will skip",
                    model.name
                );
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed with {status}");
    }
    Ok(())
}
