//! `cargo xtask bench engine`: engine throughput, every figure of a table measured in the same
//! run, back to back:
//! - decode tokens/s at several batch sizes, through the paged engine and through the simple
//!   dense-cache path;
//! - a tree-shaped workload (children extending a long shared prompt, as refinements in a
//!   search tree do) with prefix reuse on and off: wall time and prompt tokens prefilled;
//! - KV memory per sequence.

use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use mars2_engine::scheduler::{EngineConfig, EngineCore};
use mars2_engine::{generate, DeviceKind, GenerationRequest, SamplingParams};
use mars2_models::{ChatMessage, ChatOptions, LoadedModel};
use serde_json::json;

use crate::fetch_model::resolve_model_arg;
use crate::model_task::{with_model, WithModel};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure: `engine` (decode, tree workload, KV memory), `kernels` (each fused
    /// kernel against Burn's stock ops), `train-step` (one GSPO update of a random model of
    /// the `--model` shape) or `vs-llama-cpp` (prefill and decode against llama.cpp on the same
    /// GGUF file, in the same run).
    pub what: String,
    /// A registered model, a checkpoint path, or `random:smollm2-135m` /
    /// `random:qwen2.5-coder-0.5b` (that shape, random weights: no download).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// Batch sizes for the decode figures, comma-separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub batches: Vec<usize>,
    /// Tokens decoded per sequence in the decode figures.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Tree workload: children, shared prompt tokens, new prompt tokens per child, generated tokens.
    #[arg(long, default_value = "8,600,100,128", value_delimiter = ',')]
    pub tree: Vec<usize>,
    /// Skip the tree workload.
    #[arg(long)]
    pub no_tree: bool,
    #[arg(long, default_value_t = 1024)]
    pub kv_cache_mb: usize,
    /// Also decode with the projections and head kept in a block format (`q8_0`, `q4_1`, or
    /// `stored` for a GGUF file's own blocks), measured in the same run beside the f32 model.
    /// train-step with `--lora`: the frozen base kept in this format.
    #[arg(long)]
    pub quantize: Option<mars2_models::Quantization>,
    #[arg(long)]
    pub json: bool,
    /// Sample at this temperature instead of decoding greedily (with `--top-p`, as `eval`
    /// samples: `--temperature 0.7 --top-p 0.95`).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Also time each decode step by stage (host preparation, issuing the layers, waiting for
    /// the device, head + sampling), waiting for the device after each stage.
    #[arg(long)]
    pub profile: bool,
    /// train-step: sequences in the update.
    #[arg(long, default_value_t = 8)]
    pub sequences: usize,
    /// train-step: prompt tokens per sequence.
    #[arg(long, default_value_t = 100)]
    pub prompt_tokens: usize,
    /// train-step: response tokens per sequence (the tokens trained on).
    #[arg(long, default_value_t = 200)]
    pub response_tokens: usize,
    /// train-step: β of the KL term (0 runs no reference model).
    #[arg(long, default_value_t = 1e-3)]
    pub kl_beta: f64,
    /// train-step: timed updates (after one warm-up update).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// train-step: train low-rank adapters of this rank (α = 2·rank, every projection) on the
    /// frozen model instead of every weight. engine: also decode with adapters of this rank on
    /// every projection, merged into f32 weights and (with `--quantize`) added on the fly over
    /// the base kept in blocks, in the same run.
    #[arg(long, value_name = "RANK")]
    pub lora: Option<usize>,
    /// train-step: data-parallel peers (`--devices cpu,cpu`, or `--nodes` … for several
    /// processes), the batch split between them; the all-reduce time per step is printed.
    #[command(flatten)]
    pub parallel: crate::parallel_args::ParallelArgs,
    /// vs-llama-cpp: threads on both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// vs-llama-cpp: tokens of the prefill prompt.
    #[arg(long, default_value_t = 512)]
    pub prefill_tokens: usize,
    /// vs-llama-cpp: tokens decoded at batch 1 (larger batches decode `--batch-tokens` each).
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// vs-llama-cpp: tokens decoded per sequence at batch sizes above 1.
    #[arg(long, default_value_t = 64)]
    pub batch_tokens: usize,
    /// vs-llama-cpp: each figure is the best of this many runs on both sides.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what.as_str() {
        "engine" => {}
        "kernels" => return crate::bench_kernels::run(args.device, args.json),
        "train-step" => {
            return crate::bench_train_step::run(crate::bench_train_step::TrainStepBench {
                model: args.model,
                device: args.device,
                sequences: args.sequences,
                prompt_tokens: args.prompt_tokens,
                response_tokens: args.response_tokens,
                kl_beta: args.kl_beta,
                steps: args.steps,
                lora: args.lora,
                frozen_base: match args.quantize {
                    None => None,
                    Some(mars2_models::Quantization::To(format)) => Some(format),
                    Some(other) => bail!(
                        "train-step makes a random model: --quantize {} needs a format \
                         (q8_0, q4_1, ...)",
                        other.name()
                    ),
                },
                json: args.json,
                parallel: args.parallel.parallel()?,
            })
        }
        "vs-llama-cpp" => {
            return crate::bench_vs_llama_cpp::run(crate::bench_vs_llama_cpp::VsLlamaCpp {
                model: args.model,
                threads: args.threads,
                prefill_tokens: args.prefill_tokens,
                decode_tokens: args.decode_tokens,
                batches: args.batches,
                batch_tokens: args.batch_tokens,
                quantize: args
                    .quantize
                    .unwrap_or(mars2_models::Quantization::AsStored),
                repeats: args.repeats,
                json: args.json,
            })
        }
        other => {
            bail!("unknown benchmark {other:?} (known: engine, kernels, train-step, vs-llama-cpp)")
        }
    }
    if args.tree.len() != 4 {
        bail!("--tree takes four numbers: children,shared,new,generated");
    }
    let path = if args.model.starts_with("random:") {
        std::path::PathBuf::from(&args.model)
    } else {
        resolve_model_arg(&args.model)?
    };
    with_model(args.device, path, args)
}

impl BenchArgs {
    /// `n` tokens after `prompt`, greedy unless `--temperature` is set; never stopped early.
    fn request(&self, prompt: Vec<u32>, n: usize) -> GenerationRequest {
        GenerationRequest {
            prompt,
            params: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                ignore_eos: true,
                ..SamplingParams::greedy(n)
            },
        }
    }
}

/// Keeps a figure for the table; with `--json`, prints it at once (so that a run cut short
/// still leaves what it measured).
fn record(results: &mut Vec<serde_json::Value>, json: bool, value: serde_json::Value) {
    if json {
        println!("{value}");
    }
    results.push(value);
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
        let config = EngineConfig {
            kv_cache_bytes: self.kv_cache_mb << 20,
            max_running: 256,
            ..EngineConfig::default()
        };
        let quantized = match self.quantize {
            Some(quantization) => {
                let mut model = loaded.model.clone();
                crate::model_task::quantize_as_asked(
                    &mut model,
                    &loaded.source,
                    &loaded.config,
                    quantization,
                    "quantized",
                )?;
                Some(model)
            }
            None => None,
        };
        // A trained learner's weights as the engine gets them: adapters merged into dense f32
        // weights, or kept beside the base's blocks and added on the fly.
        let adapters = self.lora.map(|rank| mars2_models::LoraConfig {
            rank,
            alpha: 2.0 * rank as f64,
            ..mars2_models::LoraConfig::default()
        });
        let merged = adapters
            .as_ref()
            .map(|a| loaded.model.clone().with_adapters(a).merge_adapters());
        let on_the_fly = match (&adapters, &quantized) {
            (Some(a), Some(q)) => Some(q.clone().with_adapters(a)),
            _ => None,
        };
        let core_with = |model: &mars2_models::Transformer<B>,
                         reuse: bool|
         -> Result<(EngineCore<B>, mars2_engine::AgentId)> {
            let mut core = EngineCore::<B>::new(
                EngineConfig {
                    prefix_reuse: reuse,
                    ..config.clone()
                },
                device.clone(),
            );
            let agent = core.add_agent("bench", model.clone(), loaded.config.clone(), None)?;
            Ok((core, agent))
        };
        let new_core = |reuse: bool| core_with(&loaded.model, reuse);
        let mut results = Vec::new();

        // Decode: the time of prefill + 1 token is subtracted from prefill + (n + 1) tokens.
        for &batch in &self.batches {
            let paged_with = |model: &mars2_models::Transformer<B>, n: usize| -> Result<f64> {
                let (mut core, agent) = core_with(model, false)?;
                for i in 0..batch {
                    core.submit(agent, i as u64, self.request(prompt.clone(), n))?;
                }
                let t = Instant::now();
                core.run_until_idle();
                Ok(t.elapsed().as_secs_f64())
            };
            let paged = |n: usize| paged_with(&loaded.model, n);
            let dense = |n: usize| -> Result<f64> {
                let requests: Vec<_> = (0..batch)
                    .map(|_| self.request(prompt.clone(), n))
                    .collect();
                let t = Instant::now();
                generate(&loaded.model, &loaded.config, &requests, device)?;
                Ok(t.elapsed().as_secs_f64())
            };
            let decoded = (batch * self.new_tokens) as f64;
            // Warm-up: GPU backends compile kernels on first use of each shape.
            paged(2)?;
            dense(2)?;
            let stock_rate = if mars2_models::kernels::has_custom_kernels::<B>() {
                mars2_models::kernels::set_enabled(false);
                paged(2)?;
                let rate = decoded / (paged(self.new_tokens + 1)? - paged(1)?).max(1e-9);
                mars2_models::kernels::set_enabled(true);
                Some(rate)
            } else {
                None
            };
            let paged_rate = decoded / (paged(self.new_tokens + 1)? - paged(1)?).max(1e-9);
            let dense_rate = decoded / (dense(self.new_tokens + 1)? - dense(1)?).max(1e-9);
            let rate_of = |model: &Option<mars2_models::Transformer<B>>| -> Result<Option<f64>> {
                let Some(model) = model else {
                    return Ok(None);
                };
                paged_with(model, 2)?;
                let seconds = paged_with(model, self.new_tokens + 1)? - paged_with(model, 1)?;
                Ok(Some(decoded / seconds.max(1e-9)))
            };
            let quantized_rate = rate_of(&quantized)?;
            let merged_rate = rate_of(&merged)?;
            let on_the_fly_rate = rate_of(&on_the_fly)?;
            if let Some(rank) = self.lora {
                let show = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.1} tok/s"));
                eprintln!(
                    "decode batch {batch}, rank-{rank} adapters: merged into f32 {}, on the fly \
                     over blocks {}",
                    show(merged_rate),
                    show(on_the_fly_rate)
                );
            }
            if self.profile {
                let profiled = |n: usize| -> Result<mars2_engine::scheduler::StepProfile> {
                    let mut core = EngineCore::<B>::new(
                        EngineConfig {
                            prefix_reuse: false,
                            profile: true,
                            ..config.clone()
                        },
                        device.clone(),
                    );
                    let agent =
                        core.add_agent("bench", loaded.model.clone(), loaded.config.clone(), None)?;
                    for i in 0..batch {
                        core.submit(agent, i as u64, self.request(prompt.clone(), n))?;
                    }
                    core.run_until_idle();
                    Ok(core.stats().profile)
                };
                let (long, short) = (profiled(self.new_tokens + 1)?, profiled(1)?);
                let steps = (long.passes - short.passes).max(1) as f64;
                let ms = |a: f64, b: f64| 1e3 * (a - b) / steps;
                let stages = json!({
                    "prepare_ms": ms(long.prepare, short.prepare),
                    "issue_ms": ms(long.issue, short.issue),
                    "device_wait_ms": ms(long.device_wait, short.device_wait),
                    "sample_ms": ms(long.sample, short.sample),
                });
                eprintln!("decode batch {batch}, one step by stage (ms): {stages}");
                record(
                    &mut results,
                    self.json,
                    json!({"figure": "decode_profile", "batch": batch, "stages": stages}),
                );
            }
            record(
                &mut results,
                self.json,
                json!({"figure": "decode", "batch": batch, "paged_tokens_per_s": paged_rate, "paged_stock_ops_tokens_per_s": stock_rate, "dense_tokens_per_s": dense_rate, "paged_quantized_tokens_per_s": quantized_rate, "quantized_format": self.quantize.map(|f| f.name()), "lora_rank": self.lora, "paged_merged_adapters_tokens_per_s": merged_rate, "paged_quantized_adapters_on_the_fly_tokens_per_s": on_the_fly_rate}),
            );
            eprintln!(
                "decode batch {batch}: paged {paged_rate:.1} tok/s, dense {dense_rate:.1} tok/s"
            );
        }

        // Tree: a parent (shared prompt) is answered first; then its children arrive together.
        if !self.no_tree {
            let (children, shared, fresh, generated) =
                (self.tree[0], self.tree[1], self.tree[2], self.tree[3]);
            let vocab = loaded.config.vocab_size as u32;
            let token = |i: usize| (i as u32 * 7919 + 13) % vocab.max(1);
            let parent: Vec<u32> = (0..shared).map(token).collect();
            for reuse in [true, false] {
                let (mut core, agent) = new_core(reuse)?;
                let t = Instant::now();
                core.submit(agent, 0, self.request(parent.clone(), 1))?;
                core.run_until_idle();
                for c in 0..children {
                    let mut p = parent.clone();
                    p.extend((0..fresh).map(|i| token(shared + 1000 * (c + 1) + i)));
                    core.submit(agent, 1, self.request(p, generated))?;
                }
                core.run_until_idle();
                let seconds = t.elapsed().as_secs_f64();
                let s = core.stats();
                record(
                    &mut results,
                    self.json,
                    json!({
                        "figure": "tree", "prefix_reuse": reuse, "children": children, "shared_prompt": shared,
                        "new_prompt": fresh, "generated": generated, "wall_seconds": seconds,
                        "prefilled_tokens": s.prefilled_tokens, "reused_tokens": s.reused_tokens,
                        "peak_kv_mib": s.peak_kv_bytes as f64 / (1 << 20) as f64,
                    }),
                );
                eprintln!(
                    "tree reuse={reuse}: {seconds:.1}s, {} tokens prefilled",
                    s.prefilled_tokens
                );
            }
        }

        let c = &loaded.config;
        let per_token =
            mars2_engine::paged::kv_bytes_per_token::<B>(c.num_layers, c.num_kv_heads, c.head_dim);
        let seq_tokens = prompt.len() + self.new_tokens;
        record(
            &mut results,
            self.json,
            json!({
                "figure": "kv_memory", "bytes_per_token": per_token, "sequence_tokens": seq_tokens,
                "bytes_per_sequence": seq_tokens.div_ceil(config.block_size) * config.block_size * per_token,
            }),
        );

        if self.json {
            return Ok(());
        }
        let decoding = if self.temperature > 0.0 {
            format!(
                "sampled at temperature {}, top-p {}",
                self.temperature, self.top_p
            )
        } else {
            "greedy".to_string()
        };
        println!(
            "model: {}  device: {}  prompt: {} tokens  decoded: {} tokens/sequence, {decoding}",
            self.model,
            self.device,
            prompt.len(),
            self.new_tokens
        );
        println!();
        let quantized_column = self.quantize.map_or("paged, quantized".to_string(), |f| {
            format!("paged, {}", f.name())
        });
        println!("| batch | paged decode tokens/s | paged, stock ops | dense decode tokens/s | {quantized_column} |");
        println!("|------:|----------------------:|-----------------:|----------------------:|-----------------:|");
        let rate =
            |v: &serde_json::Value| v.as_f64().map_or("—".to_string(), |v| format!("{v:.1}"));
        for r in results.iter().filter(|r| r["figure"] == "decode") {
            println!(
                "| {:>5} | {:>21.1} | {:>16} | {:>21.1} | {:>16} |",
                r["batch"],
                r["paged_tokens_per_s"].as_f64().unwrap_or(0.0),
                rate(&r["paged_stock_ops_tokens_per_s"]),
                r["dense_tokens_per_s"].as_f64().unwrap_or(0.0),
                rate(&r["paged_quantized_tokens_per_s"]),
            );
        }
        let profiles: Vec<_> = results
            .iter()
            .filter(|r| r["figure"] == "decode_profile")
            .collect();
        if !profiles.is_empty() {
            println!();
            println!("one decode step by stage, ms (waiting for the device after each stage):");
            println!("| batch | prepare | issue layers | device wait | head + sampling |");
            println!("|------:|--------:|-------------:|------------:|----------------:|");
            for r in profiles {
                let s = &r["stages"];
                let v = |k: &str| s[k].as_f64().unwrap_or(0.0);
                println!(
                    "| {:>5} | {:>7.3} | {:>12.3} | {:>11.3} | {:>15.3} |",
                    r["batch"],
                    v("prepare_ms"),
                    v("issue_ms"),
                    v("device_wait_ms"),
                    v("sample_ms"),
                );
            }
        }
        let trees: Vec<_> = results.iter().filter(|r| r["figure"] == "tree").collect();
        if !trees.is_empty() {
            println!();
            println!("tree workload: {} children × ({} shared + {} new prompt tokens), {} generated each (after the parent)", self.tree[0], self.tree[1], self.tree[2], self.tree[3]);
            println!("| prefix reuse | wall s | prompt tokens prefilled | reused | peak KV MiB |");
            println!("|:-------------|-------:|------------------------:|-------:|------------:|");
            for r in trees {
                println!(
                    "| {:<12} | {:>6.1} | {:>23} | {:>6} | {:>11.1} |",
                    if r["prefix_reuse"] == true {
                        "on"
                    } else {
                        "off"
                    },
                    r["wall_seconds"].as_f64().unwrap_or(0.0),
                    r["prefilled_tokens"],
                    r["reused_tokens"],
                    r["peak_kv_mib"].as_f64().unwrap_or(0.0),
                );
            }
        }
        let m = results.last().expect("memory figure");
        println!();
        println!(
            "KV memory: {} bytes per token; {} bytes for a {}-token sequence (blocks of {})",
            m["bytes_per_token"], m["bytes_per_sequence"], m["sequence_tokens"], config.block_size
        );
        Ok(())
    }
}
