//! The mars2 compute engine: runs the models of `mars2-models` on a Burn backend chosen at run
//! time, caches keys and values, batches generation and samples with log-probabilities.
//!
//! - [`Engine`]: several agents (models) in one process behind a worker thread; paged KV
//!   memory under one budget ([`kv`], [`paged`]), prefix reuse, continuous batching,
//!   preemption ([`scheduler`]). Submit from any thread, wait on the handle.
//! - [`generate()`]: the simple path — one batch, a dense cache, no sharing.
//! - [`device::run_on`]: run generic code on the backend named at run time.
//!
//! ```no_run
//! use mars2_engine::{device::Cpu, generate, GenerationRequest, SamplingParams};
//! use mars2_models::load_model;
//!
//! let device = Default::default();
//! let loaded = load_model::<Cpu>("model-dir".as_ref(), &device)?;
//! let requests = vec![GenerationRequest { prompt: vec![1, 2, 3], params: SamplingParams::greedy(16) }];
//! let outputs = generate(&loaded.model, &loaded.config, &requests, &device)?;
//! println!("{:?}", outputs[0].tokens);
//! # Ok::<(), mars2_engine::EngineError>(())
//! ```

pub mod dense_cache;
pub mod device;
pub mod device_sampling;
pub mod device_spec;
pub mod engine;
pub mod error;
pub mod generate;
pub mod kv;
pub mod model_runner;
pub mod paged;
pub mod sampling;
pub mod scheduler;

pub use dense_cache::DenseKvCache;
pub use device::{run_on, BackendTask, DeviceKind};
pub use device_spec::{DeviceList, DeviceSpec};
pub use engine::{Engine, RequestHandle};
pub use error::{EngineError, Result};
pub use generate::{generate, prompt_logits, FinishReason, GenerationOutput, GenerationRequest};
pub use kv::AgentId;
pub use sampling::{Sampler, SamplingParams};
pub use scheduler::{EngineConfig, EngineStats};
