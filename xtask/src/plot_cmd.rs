//! `cargo xtask plot RUN_DIR`: redraws a training run's `plots/*.png` from its `metrics.jsonl`.

use std::path::PathBuf;

use anyhow::Result;

use crate::plots::write_training_plots;
use mars2_rl::training::round::METRICS_FILE;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// The run directory of `cargo xtask train`.
    pub run_dir: PathBuf,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let files = write_training_plots(
        &args.run_dir.join(METRICS_FILE),
        &args.run_dir.join("plots"),
    )?;
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}
