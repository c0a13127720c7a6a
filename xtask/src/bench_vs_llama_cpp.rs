//! `cargo xtask bench vs-llama-cpp`: the engine against llama.cpp on the same GGUF file, the same
//! prompt tokens and the same thread count, one after the other in one run, printed as one table
//! of ratios (ours ÷ llama.cpp): prefill of a long prompt, greedy decode at batch 1, and aggregate
//! greedy decode at larger batches. The engine is measured with both host kernels for weights
//! kept in blocks (f32 activations, and 8-bit activations as llama.cpp computes).
//!
//! llama.cpp runs from the prebuilt CPU libraries of the npm package `node-llama-cpp` (pinned
//! below), which the bench installs into `<cache>/llama-cpp` on first use; its side is
//! `benches/llama_cpp/llama_cpp_bench.mjs`, which decodes batches in lockstep and reports the
//! batch sizes it actually dispatched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use mars2_engine::scheduler::{EngineConfig, EngineCore};
use mars2_engine::{DeviceKind, GenerationRequest, SamplingParams};
use mars2_models::{ChatMessage, ChatOptions, LoadedModel, Quantization, Transformer};
use serde_json::{json, Value};

use crate::model_task::{with_model, WithModel};

/// The llama.cpp build compared against: node-llama-cpp's prebuilt CPU binaries.
const NODE_LLAMA_CPP: &str = "node-llama-cpp@3.21.1";

/// What to measure.
#[derive(Debug, Clone)]
pub struct VsLlamaCpp {
    /// A registered model name or a GGUF path.
    pub model: String,
    pub threads: usize,
    pub prefill_tokens: usize,
    /// Tokens decoded at batch 1.
    pub decode_tokens: usize,
    /// Batch sizes; batch 1 decodes `decode_tokens`, larger batches `batch_tokens` each.
    pub batches: Vec<usize>,
    pub batch_tokens: usize,
    /// How the engine keeps the weights (`stored`: the file's own blocks, as llama.cpp does).
    pub quantize: Quantization,
    /// Each figure is the best of this many runs, on both sides.
    pub repeats: usize,
    pub json: bool,
}

pub fn run(bench: VsLlamaCpp) -> Result<()> {
    let model = crate::fetch_model::resolve_model_arg(&bench.model)?;
    if model.extension().and_then(|e| e.to_str()) != Some("gguf") {
        bail!(
            "bench vs-llama-cpp needs a GGUF file (llama.cpp reads no other format); {} is not one",
            model.display()
        );
    }
    if bench.batches.is_empty() || bench.batches.contains(&0) {
        bail!("--batches takes positive batch sizes");
    }
    // Both sides get the same number of threads: the engine's kernels run on rayon's pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(bench.threads)
        .build_global()
        .context("setting the engine's thread count")?;
    let package = ensure_node_llama_cpp(&mars2_models::registry::cache_dir().join("llama-cpp"))?;
    with_model(
        DeviceKind::Cpu,
        model.clone(),
        Side {
            bench,
            model,
            package,
        },
    )
}

/// Installs node-llama-cpp into `dir` unless it is there; returns its entry module.
fn ensure_node_llama_cpp(dir: &Path) -> Result<PathBuf> {
    let entry = dir.join("node_modules/node-llama-cpp/dist/index.js");
    let prebuilt = dir.join("node_modules/@node-llama-cpp/linux-x64");
    if entry.is_file() && prebuilt.is_dir() {
        return Ok(entry);
    }
    for tool in ["node", "npm"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("bench vs-llama-cpp runs llama.cpp through Node.js: `{tool}` was not found");
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("installing {NODE_LLAMA_CPP} into {} (once)", dir.display());
    let status = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(dir)
        .args([
            NODE_LLAMA_CPP,
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ])
        .status()
        .context("running npm")?;
    if !status.success() {
        bail!("npm install {NODE_LLAMA_CPP} failed ({status})");
    }
    if !entry.is_file() || !prebuilt.is_dir() {
        bail!(
            "{NODE_LLAMA_CPP} installed into {} without its prebuilt linux-x64 libraries",
            dir.display()
        );
    }
    Ok(entry)
}

struct Side {
    bench: VsLlamaCpp,
    model: PathBuf,
    package: PathBuf,
}

/// One row of the table: a figure on both sides.
struct Row {
    figure: String,
    /// With f32 activations, then with 8-bit activations.
    ours: [f64; 2],
    theirs: f64,
    note: String,
}

impl WithModel for Side {
    type Output = ();

    fn run<B: Backend>(self, loaded: LoadedModel<B>, device: &B::Device) -> Result<()> {
        let bench = &self.bench;
        let (Some(tokenizer), Some(template)) = (&loaded.tokenizer, &loaded.chat_template) else {
            bail!("{} has no tokenizer or chat template", self.model.display());
        };
        let problems = crate::benchmark::load_benchmark(
            &crate::benchmark::Benchmark::HumanEval,
            mars2_sandbox::Split::Test,
        )?;
        let decode_prompt = tokenizer.encode(&template.render(
            &[ChatMessage::user(format!(
                "Complete this Python function.\n```python\n{}```",
                problems[0].starter_code
            ))],
            ChatOptions::default(),
        )?)?;
        let mut prefill_prompt = Vec::new();
        for problem in &problems {
            if prefill_prompt.len() >= bench.prefill_tokens {
                break;
            }
            prefill_prompt.extend(tokenizer.encode(&problem.starter_code)?);
        }
        prefill_prompt.truncate(bench.prefill_tokens);

        let theirs = llama_cpp_side(&self, &prefill_prompt, &decode_prompt)?;
        let mut model = loaded.model.clone();
        crate::model_task::quantize_as_asked(
            &mut model,
            &loaded.source,
            &loaded.config,
            bench.quantize,
            "engine",
        )?;
        let ours = Ours {
            model: &model,
            loaded: &loaded,
            device,
            repeats: bench.repeats,
        };

        // The engine with both host kernels for the blocks: f32 activations and 8-bit ones.
        let both = |what: &dyn Fn() -> Result<f64>| -> Result<[f64; 2]> {
            use mars2_models::kernels::{with_host_activations, HostActivations};
            Ok([
                with_host_activations(HostActivations::F32, what)?,
                with_host_activations(HostActivations::Int8, what)?,
            ])
        };
        let mut rows = Vec::new();
        let prefill = both(&|| ours.prefill_rate(&prefill_prompt))?;
        eprintln!(
            "engine: prefill {} tokens: {prefill:.1?} tok/s",
            prefill_prompt.len()
        );
        rows.push(Row {
            figure: format!("prefill, {}-token prompt", prefill_prompt.len()),
            ours: prefill,
            theirs: tokens_per_s(figure(&theirs, "prefill", None)?)?,
            note: String::new(),
        });
        for &batch in &bench.batches {
            let steps = if batch == 1 {
                bench.decode_tokens
            } else {
                bench.batch_tokens
            };
            let rate = both(&|| ours.decode_rate(&decode_prompt, batch, steps))?;
            eprintln!("engine: decode batch {batch}: {rate:.1?} tok/s");
            let their = figure(&theirs, "decode", Some(batch))?;
            rows.push(Row {
                figure: format!("decode, batch {batch} ({steps} tokens each)"),
                ours: rate,
                theirs: tokens_per_s(their)?,
                note: dispatched(&their["dispatched"]),
            });
        }

        let info = figure(&theirs, "info", None)?;
        if bench.json {
            for row in &rows {
                println!(
                    "{}",
                    json!({"figure": row.figure, "llama_cpp_tokens_per_s": row.theirs,
                           "engine_f32_activations_tokens_per_s": row.ours[0],
                           "engine_int8_activations_tokens_per_s": row.ours[1],
                           "ratio_f32": row.ours[0] / row.theirs,
                           "ratio_int8": row.ours[1] / row.theirs,
                           "llama_cpp_dispatched": row.note})
                );
            }
            return Ok(());
        }
        println!(
            "model: {}  threads: {}  engine weights: {}  llama.cpp: {NODE_LLAMA_CPP} ({} build), greedy",
            self.model.display(),
            bench.threads,
            bench.quantize.name(),
            info["build"].as_str().unwrap_or("?"),
        );
        println!(
            "decode prompt: {} tokens; best of {} run(s) per figure",
            decode_prompt.len(),
            bench.repeats
        );
        println!();
        println!(
            "| figure | llama.cpp tok/s | engine, f32 act. | ratio | engine, int8 act. | ratio | \
             llama.cpp batches dispatched |"
        );
        println!("|:--|--:|--:|--:|--:|--:|:--|");
        for row in &rows {
            println!(
                "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {} |",
                row.figure,
                row.theirs,
                row.ours[0],
                row.ours[0] / row.theirs,
                row.ours[1],
                row.ours[1] / row.theirs,
                row.note
            );
        }
        Ok(())
    }
}

/// Runs the Node.js side and returns its figures.
fn llama_cpp_side(side: &Side, prefill: &[u32], decode_prompt: &[u32]) -> Result<Vec<Value>> {
    let bench = &side.bench;
    let script = crate::benchmark::data_dir().join("../benches/llama_cpp/llama_cpp_bench.mjs");
    let input = tempfile::NamedTempFile::new().context("creating the llama.cpp input file")?;
    let model = std::fs::canonicalize(&side.model)
        .with_context(|| format!("resolving {}", side.model.display()))?;
    serde_json::to_writer(
        input.as_file(),
        &json!({
            "node_llama_cpp": side.package, "model": model, "threads": bench.threads,
            "prefill_tokens": prefill, "decode_prompt": decode_prompt,
            "decode_tokens": bench.decode_tokens, "batches": bench.batches,
            "batch_tokens": bench.batch_tokens, "repeats": bench.repeats,
        }),
    )?;
    let started = Instant::now();
    let output = Command::new("node")
        .arg(&script)
        .arg(input.path())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running node {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    eprintln!(
        "llama.cpp side took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("llama.cpp side printed {line:?}"))
        })
        .collect()
}

/// The llama.cpp figure named `name` (and of `batch`, for decode figures).
fn figure<'a>(figures: &'a [Value], name: &str, batch: Option<usize>) -> Result<&'a Value> {
    figures
        .iter()
        .find(|f| f["figure"] == name && batch.is_none_or(|b| f["batch"] == b))
        .with_context(|| format!("the llama.cpp side printed no {name} figure ({batch:?})"))
}

/// A llama.cpp figure's rate (an error, not a zero, when the script printed none).
fn tokens_per_s(figure: &Value) -> Result<f64> {
    figure["tokens_per_s"]
        .as_f64()
        .filter(|rate| *rate > 0.0)
        .with_context(|| format!("the llama.cpp side printed no rate in {figure}"))
}

/// `{"8": 64}` as `64 × 8`.
fn dispatched(sizes: &Value) -> String {
    let Some(sizes) = sizes.as_object() else {
        return String::new();
    };
    let mut parts: Vec<_> = sizes
        .iter()
        .map(|(size, calls)| format!("{calls} × {size}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

/// The engine's side: the paged engine as `eval` and `train` use it.
struct Ours<'a, B: Backend> {
    model: &'a Transformer<B>,
    loaded: &'a LoadedModel<B>,
    device: &'a B::Device,
    repeats: usize,
}

impl<B: Backend> Ours<'_, B> {
    /// An engine holding `batch` copies of `prompt`, `new_tokens` greedy tokens each, queued.
    fn queued(&self, prompt: &[u32], batch: usize, new_tokens: usize) -> Result<EngineCore<B>> {
        let mut core = EngineCore::<B>::new(
            EngineConfig {
                prefix_reuse: false,
                max_running: batch.max(1),
                kv_cache_bytes: 2 << 30,
                ..EngineConfig::default()
            },
            self.device.clone(),
        );
        let agent = core.add_agent(
            "bench",
            self.model.clone(),
            self.loaded.config.clone(),
            None,
        )?;
        for i in 0..batch {
            let request = GenerationRequest {
                prompt: prompt.to_vec(),
                params: SamplingParams {
                    ignore_eos: true,
                    ..SamplingParams::greedy(new_tokens)
                },
            };
            core.submit(agent, i as u64, request)?;
        }
        Ok(core)
    }

    fn best(&self, mut time: impl FnMut() -> Result<f64>) -> Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..self.repeats.max(1) {
            best = best.min(time()?);
        }
        Ok(best)
    }

    /// Prompt tokens per second of a prefill (with its one sampled token).
    fn prefill_rate(&self, prompt: &[u32]) -> Result<f64> {
        // Warm-up.
        self.queued(&prompt[..prompt.len().min(16)], 1, 1)?
            .run_until_idle();
        let seconds = self.best(|| {
            let mut core = self.queued(prompt, 1, 1)?;
            let t = Instant::now();
            core.run_until_idle();
            Ok(t.elapsed().as_secs_f64())
        })?;
        Ok(prompt.len() as f64 / seconds)
    }

    /// Aggregate decode tokens per second over `steps` steps of `batch` sequences, timed from
    /// the end of their prefill (which samples each one's first token), as on llama.cpp's side.
    fn decode_rate(&self, prompt: &[u32], batch: usize, steps: usize) -> Result<f64> {
        let seconds = self.best(|| {
            let mut core = self.queued(prompt, batch, steps + 1)?;
            let prompt_tokens = batch * prompt.len();
            while core.has_work() && core.stats().prefilled_tokens < prompt_tokens {
                core.step();
            }
            let t = Instant::now();
            core.run_until_idle();
            Ok(t.elapsed().as_secs_f64())
        })?;
        Ok((batch * steps) as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_batches_read_as_calls_times_size() {
        assert_eq!(dispatched(&json!({"8": 64})), "64 × 8");
        assert_eq!(dispatched(&json!({"32": 63, "31": 1})), "1 × 31, 63 × 32");
        assert_eq!(dispatched(&Value::Null), "");
    }

    #[test]
    fn a_missing_llama_cpp_figure_is_named() {
        let figures = vec![json!({"figure": "decode", "batch": 8, "tokens_per_s": 1.0})];
        assert!(figure(&figures, "decode", Some(8)).is_ok());
        let err = figure(&figures, "decode", Some(32))
            .unwrap_err()
            .to_string();
        assert!(err.contains("decode") && err.contains("32"), "{err}");
        assert!(figure(&figures, "prefill", None).is_err());
        assert_eq!(tokens_per_s(&figures[0]).unwrap(), 1.0);
        let err = tokens_per_s(&json!({"figure": "prefill"})).unwrap_err();
        assert!(err.to_string().contains("no rate"), "{err}");
    }

    #[test]
    fn a_model_that_is_not_gguf_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(VsLlamaCpp {
            model: dir.path().display().to_string(),
            threads: 2,
            prefill_tokens: 8,
            decode_tokens: 4,
            batches: vec![1],
            batch_tokens: 4,
            quantize: Quantization::AsStored,
            repeats: 1,
            json: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs a GGUF file"), "{err}");
    }
}
