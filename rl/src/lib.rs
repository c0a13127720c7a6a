//! Learning from search trees (MARS²): every node of a finished tree is a training sample.
//!
//! - [`shaping`]: tree-consistent reward shaping, overlong penalty, group advantage over the
//!   whole tree pooled across agents, dynamic filtering.
//! - [`samples`]: nodes → per-model samples (prompt, response, sampling log-probs, advantage).
//! - [`loss`]: GSPO (default) and token-level GRPO/DAPO with truncated importance weights,
//!   veto and k3 KL, each beside a scalar reference.
//! - [`logprobs`]: response log-probs as gather − logsumexp on the model the engine runs.
//! - [`checkpoint`]: atomic per-agent checkpoints (Hugging Face export, weights and
//!   optimizer state for exact resume).
//! - [`reward_model`]: the learned scorer of T+ (a frozen transformer's pooled features and
//!   a logistic head trained on programs that passed or failed).
//! - [`sft`]: supervised fine-tuning on (prompt, response) pairs, to make a second agent
//!   with weights of its own.
//! - [`gvendi`]: G-Vendi, the diversity of solutions in a proxy model's gradient space.
//! - [`training`]: the whole training loop as a function ([`training::train`]): rounds of
//!   rollout and updates, held-out evaluation, checkpoints and resume, events for progress.
//! - [`parallel`]: data-parallel learners on burn-collective (devices and nodes).
//! - [`trainer`]: one learner per agent — AdamW, warm-up + cosine ([`schedule`]), global
//!   gradient-norm clipping ([`grad_norm`]), gradient accumulation, its own step counter.
//! - [`batch_gradients`]: an update's forward and backward passes, in lanes (a thread per
//!   core) over the same weights.

pub mod batch_gradients;
pub mod checkpoint;
pub mod grad_norm;
pub mod gvendi;
pub mod logprobs;
pub mod loss;
pub mod parallel;
pub mod reward_model;
pub mod samples;
pub mod schedule;
pub mod sft;
pub mod shaping;
pub mod trainer;
pub mod training;

pub use loss::{LossConfig, LossKind};
pub use samples::{tree_samples, TrainSample};
pub use shaping::ShapingConfig;
pub use trainer::{AgentTrainer, StepMetrics, TrainerConfig};
