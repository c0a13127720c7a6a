//! `cargo xtask bench train-step`: the time of one GSPO update (policy forward and backward
//! per sequence, the frozen reference's forward when the KL term is on, global-norm clipping,
//! AdamW) on a model of a named shape with random weights, as `cargo xtask train` runs it.
//! `benches/python/torch_gspo_step.py` times the same update in PyTorch for comparison. With
//! `--lora RANK` the update trains low-rank adapters on the frozen model (kept in a block
//! format with `--quantize FORMAT`); the peak resident memory of the update is printed beside
//! the time. With `--devices cpu,cpu` the update is data-parallel over those peers, and the time
//! spent in all-reduces is printed.

use std::time::Instant;

use anyhow::{bail, Result};
use burn::backend::Autodiff;
use burn::module::Module;
use burn::tensor::backend::Backend;
use std::sync::Arc;

use mars2_engine::{run_on, BackendTask, DeviceKind};
use mars2_models::{LoraConfig, QuantFormat, Transformer};
use mars2_rl::logprobs::response_logprobs_at;
use mars2_rl::parallel::{Parallel, PeerGroup};
use mars2_rl::schedule::LrSchedule;
use mars2_rl::{AgentTrainer, LossConfig, TrainSample, TrainerConfig};
use serde_json::json;

use crate::model_task::random_shape;

/// The update's shape.
#[derive(Debug, Clone)]
pub struct TrainStepBench {
    pub model: String,
    pub device: DeviceKind,
    pub sequences: usize,
    pub prompt_tokens: usize,
    pub response_tokens: usize,
    pub kl_beta: f64,
    pub steps: usize,
    /// Rank of low-rank adapters on every projection (full fine-tuning when `None`).
    pub lora: Option<usize>,
    /// With adapters: the frozen base kept in this block format (f32 when `None`).
    pub frozen_base: Option<QuantFormat>,
    pub json: bool,
    /// Data-parallel peers (one replica per device, other nodes).
    pub parallel: Parallel,
}

impl BackendTask for TrainStepBench {
    type Output = Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> Result<()> {
        let Some(config) = random_shape(std::path::Path::new(&self.model))? else {
            bail!(
                "bench train-step takes a model shape (random:smollm2-135m or \
                 random:qwen2.5-coder-0.5b), not {:?}",
                self.model
            );
        };
        let mut model = Transformer::<Autodiff<B>>::random(&config, &device);
        // Counted before quantizing: a matrix in blocks is no parameter of the module.
        let base_parameters = model.num_params();
        if let Some(format) = self.frozen_base {
            if self.lora.is_none() {
                bail!("--quantize keeps a frozen base in blocks: it needs --lora");
            }
            model.quantize(format)?;
            mars2_models::release_freed_memory();
        }
        let model = match self.lora {
            Some(rank) => model.with_adapters(&LoraConfig {
                rank,
                alpha: 2.0 * rank as f64,
                ..LoraConfig::default()
            }),
            None => model,
        };

        let trained_parameters = match self.lora {
            Some(_) => model.adapter_parameters(),
            None => base_parameters,
        };
        let vocab = config.vocab_size as u32;
        let token = |i: usize| (i as u32).wrapping_mul(7919).wrapping_add(13) % vocab.max(1);
        let temperature = 0.7;
        // Sequences of the same length with advantages of both signs; the rollout log-probs
        // are the model's own, shifted so that the importance ratios differ from 1.
        let make_samples = |model: &Transformer<Autodiff<B>>| -> Vec<TrainSample> {
            (0..self.sequences)
                .map(|s| {
                    let base = 100_000 * (s + 1);
                    let prompt: Vec<u32> =
                        (0..self.prompt_tokens).map(|i| token(base + i)).collect();
                    let response: Vec<u32> = (0..self.response_tokens)
                        .map(|i| token(base + 50_000 + i))
                        .collect();
                    let own: Vec<f32> =
                        response_logprobs_at(model, &prompt, &response, temperature, &device)
                            .to_data()
                            .iter::<f32>()
                            .collect();
                    let shift = if s % 2 == 0 { 0.01 } else { -0.01 };
                    TrainSample {
                        prompt,
                        response,
                        rollout_logprobs: own.iter().map(|lp| lp + shift).collect(),
                        advantage: if s % 2 == 0 { 1.0 } else { -1.0 },
                        reward: (s % 2) as f64,
                        weights_version: 0,
                    }
                })
                .collect()
        };
        let samples = make_samples(&model);
        let trainer_config = TrainerConfig {
            schedule: LrSchedule {
                peak: 1e-6,
                warmup_fraction: 0.0,
                total_steps: self.steps + 1,
                floor_fraction: 1.0,
            },
            train_batch: self.sequences,
            grad_clip: 1.0,
            loss: LossConfig {
                kl_beta: self.kl_beta,
                ..LossConfig::default()
            },
            temperature,
        };
        let mut trainer = AgentTrainer::new(model, trainer_config, device.clone());
        let peers = if self.parallel.is_distributed() {
            let devices = self.parallel.devices_of::<B>(&device);
            let group = Arc::new(PeerGroup::<B>::start(&self.parallel, devices)?);
            trainer = trainer.with_peers(group.clone());
            Some(group)
        } else {
            None
        };
        let peer_count = peers.as_ref().map_or(1, |p| p.world());
        // The peak from here on: the update's, with the model resident (making a random model
        // and quantizing it pass through f32 copies a loaded checkpoint never has).
        reset_peak_resident();
        // Warm-up (kernel compilation and autotuning on GPU backends).
        trainer.push(samples.clone());
        trainer.train_step()?;
        let mut seconds = Vec::new();
        let exchanges_before = peers.as_ref().map(|p| p.exchange_time());
        for step in 0..self.steps {
            trainer.push(samples.clone());
            let started = Instant::now();
            let metrics = trainer.train_step()?;
            let _ = B::sync(&device);
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "step {}/{}: {elapsed:.3} s, loss {:.4}, grad norm {:.3}",
                step + 1,
                self.steps,
                metrics.as_ref().map_or(f64::NAN, |m| m.loss),
                metrics.as_ref().map_or(f64::NAN, |m| m.grad_norm),
            );
            seconds.push(elapsed);
        }
        seconds.sort_by(f64::total_cmp);
        let median = seconds[seconds.len() / 2];
        // Seconds per step that peer 0 spent in all-reduces (waiting for the others included).
        let exchange = peers
            .as_ref()
            .zip(exchanges_before)
            .map(|(p, (count0, time0))| {
                let (count, time) = p.exchange_time();
                (
                    (count - count0) as f64 / self.steps as f64,
                    (time - time0).as_secs_f64() / self.steps as f64,
                )
            });
        let peak = peak_resident_bytes();
        let tokens = self.sequences * (self.prompt_tokens + self.response_tokens);
        let result = json!({
            "figure": "train_step", "engine": "mars2", "model": self.model,
            "device": self.device.to_string(), "sequences": self.sequences,
            "prompt_tokens": self.prompt_tokens, "response_tokens": self.response_tokens,
            "kl_beta": self.kl_beta, "median_seconds": median, "tokens_per_s": tokens as f64 / median,
            "lora_rank": self.lora, "frozen_base": self.frozen_base.map(|f| f.name()),
            "base_parameters": base_parameters,
            "trained_parameters": trained_parameters, "peak_resident_bytes": peak,
            "peak_bytes_per_base_parameter": peak.map(|p| p as f64 / base_parameters as f64),
            "peers": peer_count,
            "all_reduces_per_step": exchange.map(|e| e.0),
            "all_reduce_seconds_per_step": exchange.map(|e| e.1),
            "gradient_bytes": trained_parameters * 4,
        });
        if self.json {
            println!("{result}");
        } else {
            println!(
                "one GSPO step, {} × ({} + {}) tokens, {} on {}: median {median:.3} s over {} steps ({:.0} tokens/s)",
                self.sequences,
                self.prompt_tokens,
                self.response_tokens,
                self.model,
                self.device,
                self.steps,
                tokens as f64 / median
            );
            println!(
                "{} base parameters, {} trained ({}); peak resident memory {}",
                base_parameters,
                trained_parameters,
                match (self.lora, self.frozen_base) {
                    (Some(r), Some(f)) => format!("adapters of rank {r} over a {} base", f.name()),
                    (Some(r), None) => format!("adapters of rank {r} over an f32 base"),
                    _ => "every weight".to_string(),
                },
                peak.map_or("unknown".to_string(), |p| format!(
                    "{:.2} GB ({:.1} bytes per base parameter)",
                    p as f64 / 1e9,
                    p as f64 / base_parameters as f64
                )),
            );
            if let Some((count, time)) = exchange {
                println!(
                    "{peer_count} peers: {count:.0} all-reduces per step, {:.1} ms per step in \
                     them ({:.1} MB of gradients each step)",
                    time * 1e3,
                    (trained_parameters * 4) as f64 / 1e6
                );
            }
        }
        Ok(())
    }
}

/// Starts the process's peak resident memory afresh (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak_resident() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), where Linux says it.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn run(bench: TrainStepBench) -> Result<()> {
    if bench.sequences == 0 || bench.response_tokens == 0 || bench.prompt_tokens == 0 {
        bail!("--sequences, --prompt-tokens and --response-tokens must be positive");
    }
    if bench.steps == 0 {
        bail!("--steps must be positive");
    }
    let device = bench.parallel.first_device(bench.device.into());
    run_on(device, bench)?
}
