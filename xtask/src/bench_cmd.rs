//! `cargo xtask bench engine`: decode and prefill throughput of a model at several batch sizes,
//! printed as a table (or JSON). Each batch size is measured in the same run, back to back.

use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use mars2_engine::{generate, DeviceKind, GenerationRequest, SamplingParams};
use mars2_models::{ChatMessage, ChatOptions, LoadedModel};

use crate::fetch_model::resolve_model_arg;
use crate::model_task::{with_model, WithModel};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure: `engine`.
    pub what: String,
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub batches: Vec<usize>,
    /// Tokens decoded per sequence.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.what != "engine" {
        bail!("unknown benchmark {:?} (known: engine)", args.what);
    }
    let path = resolve_model_arg(&args.model)?;
    with_model(args.device, path, args)
}

struct Row {
    batch: usize,
    prompt_tokens: usize,
    prefill_s: f64,
    decode_s: f64,
    decoded: usize,
}

impl WithModel for BenchArgs {
    type Output = ();

    fn run<B: Backend>(self, loaded: LoadedModel<B>, device: &B::Device) -> Result<()> {
        let prompt = match (&loaded.tokenizer, &loaded.chat_template) {
            (Some(tok), Some(template)) => tok.encode(&template.render(
                &[ChatMessage::user(
                    "Write a Python function that returns the n-th Fibonacci number.",
                )],
                ChatOptions::default(),
            )?)?,
            _ => (1..48).collect(),
        };
        let time = |batch: usize, new_tokens: usize| -> Result<f64> {
            let requests: Vec<GenerationRequest> = (0..batch)
                .map(|_| GenerationRequest {
                    prompt: prompt.clone(),
                    params: SamplingParams {
                        ignore_eos: true,
                        ..SamplingParams::greedy(new_tokens)
                    },
                })
                .collect();
            let started = Instant::now();
            generate(&loaded.model, &loaded.config, &requests, device)?;
            Ok(started.elapsed().as_secs_f64())
        };
        time(1, 2)?; // warm-up
        let mut rows = Vec::new();
        for &batch in &self.batches {
            let prefill_s = time(batch, 1)?;
            let full_s = time(batch, self.new_tokens + 1)?;
            rows.push(Row {
                batch,
                prompt_tokens: prompt.len(),
                prefill_s,
                decode_s: (full_s - prefill_s).max(1e-9),
                decoded: batch * self.new_tokens,
            });
        }
        if self.json {
            for r in &rows {
                println!(
                    "{}",
                    serde_json::json!({
                        "model": self.model, "device": self.device.to_string(), "batch": r.batch,
                        "prompt_tokens": r.prompt_tokens,
                        "prefill_tokens_per_s": (r.batch * r.prompt_tokens) as f64 / r.prefill_s,
                        "decode_tokens_per_s": r.decoded as f64 / r.decode_s,
                    })
                );
            }
        } else {
            println!(
                "model: {}  device: {}  prompt: {} tokens  decoded: {} tokens/sequence",
                self.model,
                self.device,
                prompt.len(),
                self.new_tokens
            );
            println!("| batch | prefill tokens/s | decode tokens/s | decode ms/step |");
            println!("|------:|-----------------:|----------------:|---------------:|");
            for r in &rows {
                println!(
                    "| {:>5} | {:>16.1} | {:>15.1} | {:>14.1} |",
                    r.batch,
                    (r.batch * r.prompt_tokens) as f64 / r.prefill_s,
                    r.decoded as f64 / r.decode_s,
                    1000.0 * r.decode_s / self.new_tokens as f64,
                );
            }
        }
        Ok(())
    }
}
