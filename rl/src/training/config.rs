//! The settings of a training run ([`TrainConfig`]), typed and read from TOML; every field
//! has a default, so an empty file is the embedded default run of `cargo xtask train`. See
//! `configs/train-default.toml` for the documented example and `configs/train-gpu.toml` for
//! a larger preset.

use std::path::{Path, PathBuf};

use mars2_engine::{DeviceKind, DeviceSpec};
use mars2_models::LoraConfig;
use mars2_search::config::{AgentChoice, ContextMode};
use serde::{Deserialize, Serialize};

use super::error::{TrainError, TrainResult};
use crate::LossKind;

fn invalid(message: impl Into<String>) -> TrainError {
    TrainError::Config(message.into())
}

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
    /// Where the models run and learn (training needs an f32 device).
    pub device: DeviceSpec,
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
    /// The adapters' shape when `train.weights = "adapters"`.
    pub lora: LoraConfig,
}

/// How a learner with adapters holds the frozen weights under them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FrozenBase {
    /// As the checkpoint stores them: a GGUF file's matrices stay in their 4–8-bit blocks
    /// (QLoRA-style; the CPU device only), others are f32.
    #[default]
    AsStored,
    /// Every matrix dequantized to f32.
    F32,
}

/// Which weights an agent's learner trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrainedWeights {
    /// Low-rank adapters (the `[lora]` section) on frozen weights: the KL reference is the
    /// model with its adapters off, AdamW keeps moments for the adapters alone and a
    /// checkpoint holds only them.
    #[default]
    Adapters,
    /// Every weight (the KL reference is a frozen copy of the starting weights).
    All,
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
    /// What a refinement prompt shows of the tree: `parent` or `path`.
    pub context: ContextMode,
    /// How the agent of a new node is chosen: `thompson`, `ucb1` or `stack`.
    pub agent_choice: AgentChoice,
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
    /// `gspo` (sequence level) or `grpo` (token level).
    pub loss: LossKind,
    pub clip: f64,
    pub kl_beta: f64,
    /// `adapters` (low-rank, shaped by `[lora]`) or `all`.
    pub weights: TrainedWeights,
    /// How an adapted learner holds its frozen weights: `as_stored` or `f32`.
    pub frozen_base: FrozenBase,
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
    /// How the rollout engine computes with the learners' adapters (runs with `[lora]`).
    pub adapters: AdapterWeights,
}

/// How the rollout engine gets an adapted learner's weights after each update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdapterWeights {
    /// The engine keeps each base as its checkpoint stores it (a GGUF file's blocks stay
    /// blocks) and adds the adapters' low-rank products on the fly; an update sends only the
    /// adapters.
    #[default]
    OnTheFly,
    /// The adapters are folded into dense f32 weights, sent whole after each update.
    Merged,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            algorithm: Algorithm::Mars2Heter,
            agents: vec![
                "qwen2.5-coder-0.5b-instruct".into(),
                "smollm2-135m-instruct".into(),
            ],
            multi_role: false,
            device: DeviceKind::Cpu.into(),
            seed: 0,
            out: PathBuf::from("runs/train"),
            data: DataConfig::default(),
            search: SearchSection::default(),
            sampling: SamplingSection::default(),
            train: TrainSection::default(),
            shaping: ShapingSection::default(),
            eval: EvalSection::default(),
            engine: EngineSection::default(),
            lora: LoraConfig::default(),
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train_problems: 8,
            eval_problems: 20,
        }
    }
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            budget: 4,
            context: ContextMode::Parent,
            agent_choice: AgentChoice::Thompson,
            concurrency: 4,
            partial_credit: true,
        }
    }
}

pub use mars2_search::prompts::CLOSING_FENCE;

impl Default for SamplingSection {
    fn default() -> Self {
        SamplingSection {
            temperature: 0.7,
            top_p: 1.0,
            max_new_tokens: 256,
            stop_strings: vec![CLOSING_FENCE.to_string()],
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            rounds: 2,
            problems_per_round: 4,
            train_batch: 4,
            lr: 2e-5,
            warmup_fraction: 0.03,
            floor_fraction: 0.1,
            grad_clip: 1.0,
            loss: LossKind::Gspo,
            clip: 0.2,
            kl_beta: 1e-3,
            weights: TrainedWeights::Adapters,
            frozen_base: FrozenBase::AsStored,
            max_staleness: 1,
        }
    }
}

impl Default for ShapingSection {
    fn default() -> Self {
        ShapingSection {
            gamma: 0.5,
            lambda: 0.5,
            dynamic_filtering: true,
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
        EngineSection {
            kv_cache_mb: 1024,
            adapters: AdapterWeights::OnTheFly,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys and invalid settings are errors naming the file.
    pub fn from_file(path: &Path) -> TrainResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let config: TrainConfig = toml::from_str(&text).map_err(|e| TrainError::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| TrainError::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// This config with `overrides` applied: each a dotted key (`algorithm`,
    /// `train.rounds`, `data.eval_problems`) and its new value. An unknown key, a section
    /// that is not one, or a value of the wrong type is an error naming the key; the result
    /// is validated.
    pub fn with_overrides(&self, overrides: &[(String, toml::Value)]) -> TrainResult<Self> {
        let base = toml::Value::try_from(self).map_err(|e| invalid(format!("the config: {e}")))?;
        let mut document = base.clone();
        for (key, value) in overrides {
            set_dotted(&mut document, key, value.clone())?;
        }
        let config: TrainConfig = match document.try_into() {
            Ok(config) => config,
            Err(e) => {
                // Name the key: the first override that fails alone (else all of them).
                let culprit = overrides.iter().find(|(key, value)| {
                    let mut alone = base.clone();
                    set_dotted(&mut alone, key, value.clone()).is_err()
                        || alone.try_into::<TrainConfig>().is_err()
                });
                let keys = match culprit {
                    Some((key, _)) => format!("`{key}`"),
                    None => overrides
                        .iter()
                        .map(|(key, _)| format!("`{key}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                return Err(invalid(format!("{keys}: {}", e.message())));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML (what a run directory keeps as `config.toml`).
    pub fn to_toml(&self) -> TrainResult<String> {
        toml::to_string_pretty(self).map_err(|e| invalid(e.to_string()))
    }

    /// The adapters every learner trains, when learners train adapters.
    pub fn adapters(&self) -> Option<&LoraConfig> {
        (self.train.weights == TrainedWeights::Adapters).then_some(&self.lora)
    }

    /// Checks settings that each parse alone but do not make a run together.
    pub fn validate(&self) -> TrainResult<()> {
        require_f32_training(self.device.kind)?;
        if self.agents.is_empty() {
            return Err(invalid("agents: name at least one model"));
        }
        if self.algorithm == Algorithm::Mars2Heter && self.agents.len() < 2 {
            return Err(invalid(
                "algorithm mars2-heter needs two or more agents with different weights",
            ));
        }
        if self.algorithm == Algorithm::Mars2 && self.agents.len() > 1 {
            return Err(invalid(
                "algorithm mars2 trains one agent (multi_role for two roles); use mars2-heter \
                 for a team",
            ));
        }
        if self.search.budget == 0 || self.train.train_batch == 0 || self.train.rounds == 0 {
            return Err(invalid(
                "search.budget, train.train_batch and train.rounds must be at least 1",
            ));
        }
        if let Some(lora) = self.adapters() {
            lora.check().map_err(invalid)?;
            if self.train.frozen_base == FrozenBase::AsStored && self.device.kind != DeviceKind::Cpu
            {
                return Err(invalid(format!(
                    "train.frozen_base = \"as_stored\" keeps the learners' frozen weights in \
                     GGUF blocks, which trains on the cpu device only; on {} set \
                     train.frozen_base = \"f32\"",
                    self.device
                )));
            }
        }
        if self.sampling.top_p < 1.0 {
            return Err(invalid(format!(
                "sampling.top_p = {}: the trainer computes log-probs under the full softmax at \
                 the rollout temperature, so rollouts must sample from that same distribution \
                 (top_p = 1.0); a nucleus cut would make every importance ratio wrong",
                self.sampling.top_p
            )));
        }
        if self.sampling.temperature.is_nan() || self.sampling.temperature <= 0.0 {
            return Err(invalid(format!(
                "sampling.temperature = {}: training rollouts sample (the log-probs are taken at \
                 that temperature); use a positive value",
                self.sampling.temperature
            )));
        }
        if self.shaping.overlong_buffer > self.sampling.max_new_tokens {
            return Err(invalid(format!(
                "shaping.overlong_buffer = {} is longer than sampling.max_new_tokens = {}",
                self.shaping.overlong_buffer, self.sampling.max_new_tokens
            )));
        }
        Ok(())
    }
}

/// Sets `key` (dotted by section) of a config document to `value`; the key must exist.
fn set_dotted(document: &mut toml::Value, key: &str, value: toml::Value) -> TrainResult<()> {
    let mut table = document
        .as_table_mut()
        .ok_or_else(|| invalid("the config is not a table"))?;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            if !table.contains_key(part) {
                return Err(invalid(format!("`{key}`: no such setting")));
            }
            table.insert(part.to_string(), value);
            return Ok(());
        }
        table = table
            .get_mut(part)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| invalid(format!("`{key}`: `{part}` is not a section")))?;
    }
    Err(invalid("an empty setting name"))
}

impl Algorithm {
    /// The name configs and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Grpo => "grpo",
            Algorithm::Mars2 => "mars2",
            Algorithm::Mars2Heter => "mars2-heter",
        }
    }
}

/// Refuses half-precision devices for training: the learners keep f32 weights, moments and
/// gradients (no loss scaling or master copy), so f16/bf16 is for generate, eval and bench.
pub fn require_f32_training(device: DeviceKind) -> TrainResult<()> {
    if device.float_type() != burn::tensor::DType::F32 {
        return Err(invalid(format!(
            "device {device} computes in half precision: training needs f32 tensors (use {}); \
             half precision is for generate, eval and bench",
            if device == DeviceKind::WgpuF16 {
                "wgpu"
            } else {
                "cuda"
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_default() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
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
            "train-smollm2-heter.toml",
        ] {
            TrainConfig::from_file(&configs.join(preset)).unwrap();
        }
    }

    #[test]
    fn overrides_change_the_named_settings_and_refuse_unknown_ones() {
        let base = TrainConfig::default();
        let set = |pairs: &[(&str, toml::Value)]| {
            let pairs: Vec<(String, toml::Value)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            base.with_overrides(&pairs)
        };
        let changed = set(&[
            ("algorithm", "grpo".into()),
            (
                "agents",
                toml::Value::Array(vec!["smollm2-135m-instruct".into()]),
            ),
            ("train.rounds", 5.into()),
            ("train.lr", 1e-4.into()),
            ("out", "runs/x".into()),
        ])
        .unwrap();
        assert_eq!(changed.algorithm, Algorithm::Grpo);
        assert_eq!(changed.agents, ["smollm2-135m-instruct"]);
        assert_eq!((changed.train.rounds, changed.train.lr), (5, 1e-4));
        assert_eq!(changed.out, Path::new("runs/x"));
        assert_eq!(changed.data, base.data);
        assert_eq!(set(&[]).unwrap(), base);
        for (key, value, says) in [
            (
                "train.learning_rate",
                toml::Value::from(1.0),
                "train.learning_rate",
            ),
            ("rounds", 2.into(), "rounds"),
            ("algorithm.name", "x".into(), "not a section"),
            ("train.rounds", "many".into(), "rounds"),
            ("algorithm", "mars3".into(), "mars3"),
        ] {
            let err = set(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(says), "{key}: {err}");
        }
        // The result is validated: mars2-heter needs two agents.
        let err = set(&[("agents", toml::Value::Array(vec!["a".into()]))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("two or more agents"), "{err}");
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = toml::from_str::<TrainConfig>("algorithm = \"mars3\"").unwrap_err();
        assert!(err.to_string().contains("mars3"));
        let err = toml::from_str::<TrainConfig>("[train]\nlearning_rate = 1.0").unwrap_err();
        assert!(err.to_string().contains("learning_rate"));
        let half = TrainConfig {
            device: DeviceKind::CudaBf16.into(),
            ..TrainConfig::default()
        };
        let err = half.validate().unwrap_err().to_string();
        assert!(err.contains("cuda-bf16") && err.contains("f32"), "{err}");
        let err = toml::from_str::<TrainConfig>("device = \"tpu\"").unwrap_err();
        assert!(err.to_string().contains("tpu"), "{err}");
        let err = toml::from_str::<TrainConfig>("[train]\nloss = \"ppo\"").unwrap_err();
        assert!(err.to_string().contains("ppo"), "{err}");
        let err = toml::from_str::<TrainConfig>("[search]\ncontext = \"tree\"").unwrap_err();
        assert!(err.to_string().contains("tree"), "{err}");
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
    fn adapters_are_configured_by_their_own_section() {
        let config: TrainConfig =
            toml::from_str("[lora]\nrank = 8\nalpha = 16\ntargets = [\"q_proj\", \"v_proj\"]")
                .unwrap();
        let lora = config.adapters().expect("adapters by default");
        assert_eq!((lora.rank, lora.targets.len(), lora.scale()), (8, 2, 2.0));
        config.validate().unwrap();
        let err =
            toml::from_str::<TrainConfig>("[lora]\nrank = 8\nalpha = 16\ntargets = [\"qkv\"]")
                .unwrap_err();
        assert!(err.to_string().contains("qkv"), "{err}");
        let zero: TrainConfig =
            toml::from_str("[lora]\nrank = 0\nalpha = 16\ntargets = [\"q_proj\"]").unwrap();
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("lora.rank"), "{err}");
        let mut gpu = TrainConfig {
            device: DeviceKind::Cuda.into(),
            ..TrainConfig::default()
        };
        let err = gpu.validate().unwrap_err().to_string();
        assert!(err.contains("frozen_base"), "{err}");
        gpu.train.frozen_base = FrozenBase::F32;
        gpu.validate().unwrap();
        let all: TrainConfig = toml::from_str("[train]\nweights = \"all\"").unwrap();
        assert_eq!(all.adapters(), None);
        assert_eq!(
            TrainConfig::default().adapters(),
            Some(&LoraConfig::default())
        );
        let err = toml::from_str::<TrainConfig>("[train]\nweights = \"some\"").unwrap_err();
        assert!(err.to_string().contains("some"), "{err}");
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
