//! Running command-line work on the device the user chose: a closure-like task that loads a
//! model on the selected backend and does something with it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use mars2_engine::{run_on, BackendTask, DeviceSpec};
use mars2_models::{
    load_model, quantize_from_checkpoint, LoadedModel, ModelConfig, Quantization, Transformer,
};

/// Quantizes `model`, loaded from the checkpoint at `source`, as `--quantize` asks, and says
/// on stderr how many matrices were taken as stored, quantized or left dense.
pub fn quantize_as_asked<B: Backend>(
    model: &mut Transformer<B>,
    source: &Path,
    config: &ModelConfig,
    quantization: Quantization,
    name: &str,
) -> Result<()> {
    let report = quantize_from_checkpoint(model, source, config, quantization)
        .with_context(|| format!("quantizing {}", source.display()))?;
    eprintln!("{name}: {report}");
    Ok(())
}

/// `random:smollm2-135m`, `random:qwen2.5-coder-0.5b` and `random:qwen2.5-coder-1.5b` name a
/// model of that shape with random weights (for throughput figures that need no download); any other path is a checkpoint.
pub fn random_shape(path: &std::path::Path) -> Result<Option<ModelConfig>> {
    match path.to_str().and_then(|s| s.strip_prefix("random:")) {
        None => Ok(None),
        Some("smollm2-135m") => Ok(Some(ModelConfig::smollm2_135m())),
        Some("qwen2.5-coder-0.5b") => Ok(Some(ModelConfig::qwen2_5_coder_0_5b())),
        Some("qwen2.5-coder-1.5b") => Ok(Some(ModelConfig::qwen2_5_coder_1_5b())),
        Some(other) => anyhow::bail!(
            "unknown random model shape {other:?} (known: smollm2-135m, qwen2.5-coder-0.5b, \
             qwen2.5-coder-1.5b)"
        ),
    }
}

/// Work to do with a loaded model, on any backend.
pub trait WithModel {
    type Output;
    fn run<B: Backend>(self, model: LoadedModel<B>, device: &B::Device) -> Result<Self::Output>;
}

struct Task<W> {
    path: PathBuf,
    work: W,
}

impl<W: WithModel> BackendTask for Task<W> {
    type Output = Result<W::Output>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let started = std::time::Instant::now();
        let model = match random_shape(&self.path)? {
            Some(config) => LoadedModel {
                model: Transformer::random(&config, &device),
                config,
                tokenizer: None,
                chat_template: None,
                source: self.path.clone(),
            },
            None => load_model::<B>(&self.path, &device)?,
        };
        tracing::info!(
            "loaded {} in {:.1}s",
            self.path.display(),
            started.elapsed().as_secs_f64()
        );
        self.work.run(model, &device)
    }
}

/// Loads the model at `path` on `device` and runs `work` with it.
pub fn with_model<W: WithModel>(
    device: impl Into<DeviceSpec>,
    path: PathBuf,
    work: W,
) -> Result<W::Output> {
    run_on(device, Task { path, work })?
}
