//! The settings of `cargo xtask train`, read from TOML (`--config`); every field has a
//! default, so an empty file (or none) is the embedded default run. See
//! `configs/train-default.toml` for the documented example and `configs/train-gpu.toml` for
//! a larger preset.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mars2_engine::DeviceKind;
use serde::{Deserialize, Serialize};

/// What is trained and how samples are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// N independent fresh samples per problem, advantages normalised over the N.
    Grpo,
    /// One AB-MCTS tree per problem (single agent, or one model in two roles).
    #[default]
    Mars2,
    /// One tree per problem written by two or more agents with different weights.
    Mars2Heter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub algorithm: Algorithm,
    /// Registered model names or checkpoint paths, one per agent.
    pub agents: Vec<String>,
    /// One model in two roles (generator and refiner) with their own prompts and arms.
    pub multi_role: bool,
    pub device: String,
    pub seed: u64,
    /// Run directory.
    pub out: PathBuf,
    pub data: DataConfig,
    pub search: SearchSection,
    pub sampling: SamplingSection,
    pub train: TrainSection,
    pub shaping: ShapingSection,
    pub eval: EvalSection,
    pub engine: EngineSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training problems: the first N of MBPP's train split.
    pub train_problems: usize,
    /// Held-out problems: the first N of MBPP's test split.
    pub eval_problems: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSection {
    /// Nodes per tree (samples per problem for grpo).
    pub budget: usize,
    /// parent or path.
    pub context: String,
    /// thompson, ucb1 or stack.
    pub agent_choice: String,
    /// Trees grown at once.
    pub concurrency: usize,
    /// Reward = fraction of tests passed instead of all-or-nothing.
    pub partial_credit: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingSection {
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
    /// Generation stops once the answer contains one of these.
    pub stop_strings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Rollout-then-update rounds.
    pub rounds: usize,
    /// Problems (trees) per round.
    pub problems_per_round: usize,
    /// Samples per optimizer step (per agent).
    pub train_batch: usize,
    pub lr: f64,
    pub warmup_fraction: f64,
    /// Cosine floor as a fraction of `lr`.
    pub floor_fraction: f64,
    pub grad_clip: f64,
    /// gspo or grpo (token level).
    pub loss: String,
    pub clip: f64,
    pub kl_beta: f64,
    /// How many rounds the rollout may run ahead of training: 0 alternates rollout and
    /// training; 1 grows round r+1's trees while round r trains (samples are then up to one
    /// round of updates stale, which the truncated importance weights correct for).
    pub max_staleness: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapingSection {
    pub gamma: f64,
    pub lambda: f64,
    pub dynamic_filtering: bool,
    /// Overlong penalty over the last `overlong_buffer` tokens before `sampling.max_new_tokens`
    /// (`−min(|y| − (L_max − buf), buf)/buf`); 0 turns it off.
    pub overlong_buffer: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Answers per held-out problem.
    pub samples: usize,
    /// 0 is greedy.
    pub temperature: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    pub kv_cache_mb: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            algorithm: Algorithm::Mars2Heter,
            agents: vec![
                "smollm2-135m-instruct".into(),
                "smollm2-135m-mbpp-sft".into(),
            ],
            multi_role: false,
            device: "cpu".into(),
            seed: 0,
            out: PathBuf::from("runs/train"),
            data: DataConfig::default(),
            search: SearchSection::default(),
            sampling: SamplingSection::default(),
            train: TrainSection::default(),
            shaping: ShapingSection::default(),
            eval: EvalSection::default(),
            engine: EngineSection::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train_problems: 8,
            eval_problems: 10,
        }
    }
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            budget: 4,
            context: "parent".into(),
            agent_choice: "thompson".into(),
            concurrency: 4,
            partial_credit: true,
        }
    }
}

/// The end of a fenced code block on its own line: answers stop after their first program
/// (the opening fence carries a language name, so it does not match).
pub const CLOSING_FENCE: &str = "\n```\n";

impl Default for SamplingSection {
    fn default() -> Self {
        SamplingSection {
            temperature: 0.7,
            top_p: 1.0,
            max_new_tokens: 160,
            stop_strings: vec![CLOSING_FENCE.to_string()],
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            rounds: 2,
            problems_per_round: 4,
            train_batch: 8,
            lr: 5e-6,
            warmup_fraction: 0.03,
            floor_fraction: 0.1,
            grad_clip: 1.0,
            loss: "gspo".into(),
            clip: 0.2,
            kl_beta: 1e-3,
            max_staleness: 1,
        }
    }
}

impl Default for ShapingSection {
    fn default() -> Self {
        ShapingSection {
            gamma: 0.5,
            lambda: 0.5,
            dynamic_filtering: false,
            overlong_buffer: 0,
        }
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            samples: 1,
            temperature: 0.0,
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection { kv_cache_mb: 1024 }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are errors naming the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: TrainConfig =
            toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        let device: DeviceKind = self
            .device
            .parse()
            .with_context(|| format!("device = {:?}", self.device))?;
        require_f32_training(device)?;
        if self.agents.is_empty() {
            bail!("agents: name at least one model");
        }
        if self.algorithm == Algorithm::Mars2Heter && self.agents.len() < 2 {
            bail!("algorithm mars2-heter needs two or more agents with different weights");
        }
        if self.algorithm == Algorithm::Mars2 && self.agents.len() > 1 {
            bail!("algorithm mars2 trains one agent (multi_role for two roles); use mars2-heter for a team");
        }
        if self.search.budget == 0 || self.train.train_batch == 0 || self.train.rounds == 0 {
            bail!("search.budget, train.train_batch and train.rounds must be at least 1");
        }
        if !matches!(self.train.loss.as_str(), "gspo" | "grpo") {
            bail!("train.loss must be gspo or grpo, not {:?}", self.train.loss);
        }
        if self.sampling.top_p < 1.0 {
            bail!(
                "sampling.top_p = {}: the trainer computes log-probs under the full softmax at \
                 the rollout temperature, so rollouts must sample from that same distribution \
                 (top_p = 1.0); a nucleus cut would make every importance ratio wrong",
                self.sampling.top_p
            );
        }
        if self.sampling.temperature.is_nan() || self.sampling.temperature <= 0.0 {
            bail!(
                "sampling.temperature = {}: training rollouts sample (the log-probs are taken at \
                 that temperature); use a positive value",
                self.sampling.temperature
            );
        }
        if self.shaping.overlong_buffer > self.sampling.max_new_tokens {
            bail!(
                "shaping.overlong_buffer = {} is longer than sampling.max_new_tokens = {}",
                self.shaping.overlong_buffer,
                self.sampling.max_new_tokens
            );
        }
        Ok(())
    }
}

/// Refuses half-precision devices for training: the learners keep f32 weights, moments and
/// gradients (no loss scaling or master copy), so f16/bf16 is for generate, eval and bench.
pub fn require_f32_training(device: DeviceKind) -> Result<()> {
    if device.float_type() != burn::tensor::DType::F32 {
        bail!(
            "device {device} computes in half precision: training needs f32 tensors (use {}); \
             half precision is for generate, eval and bench",
            if device == DeviceKind::WgpuF16 {
                "wgpu"
            } else {
                "cuda"
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_default() {
        let configs = crate::benchmark::data_dir().join("../configs");
        let path = configs.join("train-default.toml");
        assert_eq!(
            TrainConfig::from_file(&path).unwrap(),
            TrainConfig::default()
        );
        for preset in [
            "train-gpu.toml",
            "train-single-agent.toml",
            "train-grpo.toml",
            "train-mars2.toml",
        ] {
            TrainConfig::from_file(&configs.join(preset)).unwrap();
        }
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = toml::from_str::<TrainConfig>("algorithm = \"mars3\"").unwrap_err();
        assert!(err.to_string().contains("mars3"));
        let err = toml::from_str::<TrainConfig>("[train]\nlearning_rate = 1.0").unwrap_err();
        assert!(err.to_string().contains("learning_rate"));
        let half = TrainConfig {
            device: "cuda-bf16".into(),
            ..TrainConfig::default()
        };
        let err = half.validate().unwrap_err().to_string();
        assert!(err.contains("cuda-bf16") && err.contains("f32"), "{err}");
        let unknown = TrainConfig {
            device: "tpu".into(),
            ..TrainConfig::default()
        };
        assert!(format!("{:#}", unknown.validate().unwrap_err()).contains("tpu"));
        let heter = TrainConfig {
            agents: vec!["smollm2-135m-instruct".into()],
            ..TrainConfig::default()
        };
        assert!(heter
            .validate()
            .unwrap_err()
            .to_string()
            .contains("two or more"));
    }

    #[test]
    fn rollouts_must_sample_from_the_distribution_the_trainer_scores() {
        let mut nucleus = TrainConfig::default();
        nucleus.sampling.top_p = 0.95;
        let err = nucleus.validate().unwrap_err().to_string();
        assert!(err.contains("top_p = 0.95"), "{err}");
        let mut greedy = TrainConfig::default();
        greedy.sampling.temperature = 0.0;
        assert!(greedy
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature"));
        let mut overlong = TrainConfig::default();
        overlong.shaping.overlong_buffer = 1000;
        assert!(overlong
            .validate()
            .unwrap_err()
            .to_string()
            .contains("overlong_buffer"));
    }
}
