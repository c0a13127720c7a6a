//! `cargo xtask logits`: the logits at every position of one token sequence, written as a
//! safetensors file holding `logits`, `[tokens, vocab]` f32.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use mars2_engine::{prompt_logits, DeviceSpec};
use mars2_models::LoadedModel;
use safetensors::tensor::{Dtype, TensorView};

use crate::fetch_model::resolve_model_arg;
use crate::model_task::{with_model, WithModel};

#[derive(clap::Args, Debug)]
pub struct LogitsArgs {
    #[arg(long)]
    pub model: String,
    /// The token sequence, comma-separated (`1,2,3`).
    #[arg(long = "input-ids", value_delimiter = ',', required = true)]
    pub input_ids: Vec<u32>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
}

pub fn run(args: LogitsArgs) -> Result<()> {
    let path = resolve_model_arg(&args.model)?;
    with_model(args.device, path, args)
}

impl WithModel for LogitsArgs {
    type Output = ();

    fn run<B: Backend>(self, loaded: LoadedModel<B>, device: &B::Device) -> Result<()> {
        let logits = prompt_logits(&loaded.model, &loaded.config, &self.input_ids, device)?;
        let shape = vec![self.input_ids.len(), loaded.config.vocab_size];
        let bytes: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, shape.clone(), &bytes)?;
        let out = safetensors::serialize([("logits", view)], None)?;
        std::fs::write(&self.out, out)
            .with_context(|| format!("writing {}", self.out.display()))?;
        eprintln!("wrote logits {shape:?} to {}", self.out.display());
        Ok(())
    }
}
