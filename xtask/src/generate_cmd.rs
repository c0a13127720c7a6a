//! `cargo xtask generate`: text or token ids in, continuations out (plain text, or one JSON
//! line per prompt with `--json`). All prompts of one call are generated as one batch.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use mars2_engine::{generate, DeviceSpec, GenerationRequest, SamplingParams};
use mars2_models::{ChatMessage, ChatOptions, LoadedModel};

use crate::fetch_model::resolve_model_arg;
use crate::model_task::{with_model, WithModel};

#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// A model directory, a .gguf file or a registered model name.
    #[arg(long)]
    pub model: String,
    /// Raw text prompts, tokenized as they are.
    #[arg(long)]
    pub prompt: Vec<String>,
    /// User messages, rendered with the model's chat template.
    #[arg(long)]
    pub chat: Vec<String>,
    /// Token-id prompts, comma-separated (repeat the flag for a batch).
    #[arg(long = "input-ids", value_parser = parse_ids)]
    pub input_ids: Vec<Vec<u32>>,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// cpu, wgpu, cuda, or half precision: wgpu-f16, cuda-f16, cuda-bf16.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Keep the projections and output head in a GGUF block format while generating (less
    /// memory per weight, quantized kernels): `q8_0`, `q4_1`, or `stored` for a GGUF file's own
    /// Q8_0/Q4_1 tensors as they are. A GGUF tensor already in the named format keeps its
    /// blocks.
    #[arg(long)]
    pub quantize: Option<mars2_models::Quantization>,
    /// One JSON object per prompt on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_ids(s: &str) -> std::result::Result<Vec<u32>, String> {
    s.split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| format!("{p:?} is not a token id"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.is_empty() {
                Err("no token ids given".into())
            } else {
                Ok(v)
            }
        })
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.prompt.is_empty() && args.chat.is_empty() && args.input_ids.is_empty() {
        bail!("give at least one of --prompt, --chat or --input-ids");
    }
    let path = resolve_model_arg(&args.model)?;
    let device = args.device;
    with_model(device, path, args)
}

impl WithModel for GenerateArgs {
    type Output = ();

    fn run<B: Backend>(self, mut loaded: LoadedModel<B>, device: &B::Device) -> Result<()> {
        if let Some(quantization) = self.quantize {
            crate::model_task::quantize_as_asked(
                &mut loaded.model,
                &loaded.source,
                &loaded.config,
                quantization,
                "quantized",
            )?;
        }
        let mut prompts: Vec<Vec<u32>> = Vec::new();
        let needs_tokenizer = !self.prompt.is_empty() || !self.chat.is_empty();
        let tokenizer = loaded.tokenizer.as_ref();
        if needs_tokenizer && tokenizer.is_none() {
            bail!(
                "{} has no tokenizer: use --input-ids",
                loaded.source.display()
            );
        }
        for text in &self.prompt {
            prompts.push(tokenizer.context("tokenizer")?.encode(text)?);
        }
        for text in &self.chat {
            let template = loaded
                .chat_template
                .as_ref()
                .with_context(|| format!("{} has no chat template", loaded.source.display()))?;
            let rendered =
                template.render(&[ChatMessage::user(text.as_str())], ChatOptions::default())?;
            prompts.push(tokenizer.context("tokenizer")?.encode(&rendered)?);
        }
        prompts.extend(self.input_ids.iter().cloned());
        let params = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            max_new_tokens: self.max_new_tokens,
            ignore_eos: self.ignore_eos,
            ..SamplingParams::default()
        };
        let requests: Vec<GenerationRequest> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| GenerationRequest {
                prompt: p.clone(),
                // Each prompt gets its own stream of random numbers.
                params: SamplingParams {
                    seed: params.seed.wrapping_add(i as u64),
                    ..params.clone()
                },
            })
            .collect();
        let started = Instant::now();
        let outputs = generate(&loaded.model, &loaded.config, &requests, device)?;
        let seconds = started.elapsed().as_secs_f64();
        let total: usize = outputs.iter().map(|o| o.tokens.len()).sum();
        for (prompt, out) in prompts.iter().zip(&outputs) {
            let text = match tokenizer {
                Some(t) => t.decode(&out.tokens, true)?,
                None => String::new(),
            };
            if self.json {
                let line = serde_json::json!({
                    "input_ids": prompt,
                    "output_ids": out.tokens,
                    "text": text,
                    "logprobs": out.logprobs,
                    "finish_reason": out.finish_reason,
                });
                println!("{line}");
            } else {
                println!("{text}");
            }
        }
        eprintln!(
            "generated {total} tokens for {} prompt(s) in {seconds:.2}s ({:.1} tokens/s) on {}",
            prompts.len(),
            total as f64 / seconds.max(1e-9),
            self.device
        );
        Ok(())
    }
}
