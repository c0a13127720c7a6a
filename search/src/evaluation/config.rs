//! The settings of an evaluation ([`EvalConfig`]), with the defaults of `cargo xtask eval`,
//! and the record of them that a run directory keeps in `run.json`: a directory resumes only a
//! run with the same record.

use std::path::Path;

use mars2_engine::{DeviceKind, DeviceSpec, SamplingParams};
use mars2_models::kernels::HostActivations;
use mars2_models::Quantization;
use mars2_sandbox::Split;
use serde_json::{json, Value};

use crate::config::{AgentChoice, ContextMode, Method, PromptStyle, SearchConfig};
use crate::error::{Result, SearchError};
use crate::prompts::CLOSING_FENCE;
use crate::team::AgentModel;

/// Every setting of an evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    pub method: Method,
    /// Nodes per tree.
    pub budget: usize,
    /// Fresh samples per problem and generator agent for Pass@1 (0: none).
    pub samples: usize,
    pub seed: u64,
    /// What a refinement prompt shows: the parent or the whole path.
    pub context: ContextMode,
    pub agent_choice: AgentChoice,
    /// Each model plays two agents: a generator and a refiner.
    pub multi_role: bool,
    /// κ of the depth-guided GEN scaling; `None`: the method's default (0.5 for T+, else 0).
    pub kappa: Option<f64>,
    /// Stop growing a tree once a node passes the public tests.
    pub stop_on_pass: bool,
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
    /// End each answer at the close of its first fenced code block.
    pub stop_at_fence: bool,
    /// Trees grown at once (their requests are batched by the engine).
    pub concurrency: usize,
    /// KV cache memory for all agents, MiB.
    pub kv_cache_mb: usize,
    /// K of DA@K: correct programs clustered per problem.
    pub da_k: usize,
    /// Blend the scorer into the rewards the search sees: α·tests + (1 − α)·scorer.
    pub blend_alpha: Option<f64>,
    /// Keep the agents' matrices in a block format while searching.
    pub quantize: Option<Quantization>,
    /// How the CPU multiplies activations with blocks (`None`: the process-wide choice).
    pub activations: Option<HostActivations>,
    pub prompt_style: PromptStyle,
    /// Judge only a program's imports, definitions and assignments (EvalPlus's sanitizing).
    pub definitions_only: bool,
    /// Where [`super::evaluate_on`] runs.
    pub device: DeviceSpec,
}

impl Default for EvalConfig {
    /// Eight-node AB-MCTS trees with four fresh samples per problem, sampled at temperature
    /// 0.7, on the CPU.
    fn default() -> Self {
        EvalConfig {
            method: Method::Abmcts,
            budget: 8,
            samples: 4,
            seed: 0,
            context: ContextMode::Parent,
            agent_choice: AgentChoice::Thompson,
            multi_role: false,
            kappa: None,
            stop_on_pass: true,
            temperature: 0.7,
            top_p: 0.95,
            max_new_tokens: 384,
            stop_at_fence: false,
            concurrency: 8,
            kv_cache_mb: 1024,
            da_k: 8,
            blend_alpha: None,
            quantize: None,
            activations: None,
            prompt_style: PromptStyle::Project,
            definitions_only: false,
            device: DeviceKind::Cpu.into(),
        }
    }
}

impl EvalConfig {
    /// Why these settings cannot run, if they cannot (before anything is loaded).
    pub fn check(&self) -> Result<()> {
        if self.budget == 0 {
            return Err(SearchError::Config(
                "the budget must be at least 1 node".into(),
            ));
        }
        Ok(())
    }

    /// The settings of each tree's search.
    pub fn search_config(&self) -> SearchConfig {
        let mut config = SearchConfig::for_eval(self.method, self.budget);
        config.context = self.context;
        config.agent_choice = self.agent_choice;
        if let Some(kappa) = self.kappa {
            config.depth_kappa = kappa;
        }
        config.stop_on_pass = self.stop_on_pass;
        config.seed = self.seed;
        config.blend_alpha = self.blend_alpha;
        config.prompt_style = self.prompt_style;
        config.definitions_only = self.definitions_only;
        config
    }

    /// How every agent samples.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            stop_strings: if self.stop_at_fence {
                vec![CLOSING_FENCE.to_string()]
            } else {
                Vec::new()
            },
            ..SamplingParams::default()
        }
    }

    /// Everything that decides the results of a run (not the problem limit, device or
    /// concurrency), as `run.json` records it.
    pub fn settings(
        &self,
        benchmark: &str,
        split: Split,
        models: &[AgentModel],
        reward_model: Option<&Path>,
    ) -> Value {
        let mut settings = json!({
            "benchmark": benchmark,
            "split": format!("{split:?}").to_lowercase(),
            "agents": models.iter().map(|m| json!({"name": m.name, "path": m.path})).collect::<Vec<_>>(),
            "multi_role": self.multi_role,
            "search": self.search_config(),
            "samples": self.samples,
            "sampling": self.sampling(),
            "da_k": self.da_k,
            "reward_model": reward_model,
        });
        // Only when set, so that run directories written before the option still resume.
        if let Some(q) = self.quantize {
            settings["quantize"] = json!(q.name());
        }
        if let Some(a) = self.activations {
            settings["activations"] = json!(a.name());
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_record_names_what_decides_the_results() {
        let models = [AgentModel {
            name: "a".into(),
            path: "/m/a.gguf".into(),
        }];
        let mut config = EvalConfig {
            kappa: Some(0.25),
            stop_at_fence: true,
            ..EvalConfig::default()
        };
        let settings = config.settings("humaneval", Split::Test, &models, None);
        assert_eq!(settings["benchmark"], "humaneval");
        assert_eq!(settings["split"], "test");
        assert_eq!(settings["search"]["depth_kappa"], 0.25);
        assert_eq!(settings["sampling"]["stop_strings"][0], CLOSING_FENCE);
        assert!(settings.get("quantize").is_none());
        // The device and the concurrency change nothing of the results.
        config.concurrency = 1;
        config.device = DeviceKind::Wgpu.into();
        assert_eq!(
            config.settings("humaneval", Split::Test, &models, None),
            settings
        );
        config.quantize = Some(Quantization::AsStored);
        let settings = config.settings("humaneval", Split::Test, &models, None);
        assert_eq!(settings["quantize"], "stored");
        assert!(settings.get("activations").is_none());
        config.activations = Some(HostActivations::Int8);
        let settings = config.settings("humaneval", Split::Test, &models, None);
        assert_eq!(settings["activations"], "int8");
    }
}
