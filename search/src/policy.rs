//! The boundary between search and generation: a [`Policy`] turns a conversation into an
//! answer of one of its models. [`EnginePolicy`] serves it from the engine, rendering each
//! model's own chat template with its own tokenizer; tests use scripted policies.
//!
//! Calls block; many trees call at once from their own threads, and the engine batches the
//! requests that are in flight together.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::backend::Backend;
use mars2_engine::{AgentId, Engine, FinishReason, GenerationRequest, SamplingParams};
use mars2_models::{ChatMessage, ChatOptions, ChatTemplate, LoadedModel, TextTokenizer};

use crate::error::{Result, SearchError};
use crate::tree::Generation;

/// One generation to make.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// Which of the policy's models answers.
    pub model: usize,
    /// Ties the requests of one tree together (the engine's fairness group).
    pub group: u64,
    pub messages: &'a [ChatMessage],
    /// The start of the answer, written for the model after the generation prompt (empty
    /// for none); the answer's text begins with it.
    pub response_prefix: &'a str,
    /// Seed of this generation's sampling.
    pub seed: u64,
}

/// Something that answers conversations with one of several models.
pub trait Policy: Sync {
    /// How many models it serves.
    fn models(&self) -> usize;
    /// Name of model `model`, for reports.
    fn model_name(&self, model: usize) -> String;
    /// Generates an answer. Blocking; may be called from many threads at once.
    fn generate(&self, request: PolicyRequest<'_>) -> Result<Generation>;
}

/// One model served by an [`EnginePolicy`].
struct ServedModel {
    name: String,
    agent: AgentId,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    params: SamplingParams,
    weights_version: AtomicU64,
}

/// A [`Policy`] backed by the multi-agent [`Engine`].
pub struct EnginePolicy<B: Backend> {
    engine: Engine<B>,
    models: Vec<ServedModel>,
}

impl<B: Backend> EnginePolicy<B> {
    pub fn new(engine: Engine<B>) -> Self {
        EnginePolicy {
            engine,
            models: Vec::new(),
        }
    }

    /// Hosts `loaded` under `name`, sampling with `params` (the seed is set per request);
    /// returns its model index.
    pub fn add_model(
        &mut self,
        name: &str,
        loaded: LoadedModel<B>,
        params: SamplingParams,
    ) -> Result<usize> {
        let source = loaded.source.display().to_string();
        let tokenizer = loaded.tokenizer.clone().ok_or_else(|| {
            SearchError::Prompt(format!("{source} has no tokenizer; the search needs text"))
        })?;
        let template = loaded
            .chat_template
            .clone()
            .ok_or_else(|| SearchError::Prompt(format!("{source} has no chat template")))?;
        let agent = self
            .engine
            .add_agent(name, loaded)
            .map_err(|e| SearchError::Generation(e.to_string()))?;
        self.models.push(ServedModel {
            name: name.to_string(),
            agent,
            tokenizer,
            template,
            params,
            weights_version: AtomicU64::new(0),
        });
        Ok(self.models.len() - 1)
    }

    pub fn engine(&self) -> &Engine<B> {
        &self.engine
    }

    /// Replaces model `model`'s weights; later generations use them and report the new
    /// version.
    pub fn update_weights(
        &self,
        model: usize,
        weights: mars2_models::Transformer<B>,
    ) -> Result<u64> {
        self.update_weights_as(model, weights, 0)
    }

    /// As [`EnginePolicy::update_weights`], numbering the weights `version` when it is newer
    /// than the current one (a resumed run continues its numbering).
    pub fn update_weights_as(
        &self,
        model: usize,
        weights: mars2_models::Transformer<B>,
        version: u64,
    ) -> Result<u64> {
        let served = self.served(model)?;
        let version = self
            .engine
            .update_weights_as(served.agent, weights, version)
            .map_err(|e| SearchError::Generation(e.to_string()))?;
        served.weights_version.store(version, Ordering::SeqCst);
        Ok(version)
    }

    /// The weights version model `model` generates with now.
    pub fn weights_version(&self, model: usize) -> Result<u64> {
        Ok(self.served(model)?.weights_version.load(Ordering::SeqCst))
    }

    /// The prompt token ids of `messages` for model `model`, the answer started with
    /// `response_prefix`.
    pub fn encode(
        &self,
        model: usize,
        messages: &[ChatMessage],
        response_prefix: &str,
    ) -> Result<Vec<u32>> {
        let served = self.served(model)?;
        let mut text = served
            .template
            .render(messages, ChatOptions::default())
            .map_err(|e| SearchError::Prompt(e.to_string()))?;
        text.push_str(response_prefix);
        served
            .tokenizer
            .encode(&text)
            .map_err(|e| SearchError::Prompt(e.to_string()))
    }

    fn served(&self, model: usize) -> Result<&ServedModel> {
        self.models
            .get(model)
            .ok_or_else(|| SearchError::UnknownModel {
                agent: format!("model {model}"),
                model,
                models: self.models.len(),
            })
    }
}

impl<B: Backend> Policy for EnginePolicy<B> {
    fn models(&self) -> usize {
        self.models.len()
    }

    fn model_name(&self, model: usize) -> String {
        self.models
            .get(model)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    fn generate(&self, request: PolicyRequest<'_>) -> Result<Generation> {
        self.generate_with(request, None)
    }
}

/// An [`EnginePolicy`] seen with other sampling parameters (one set for every model), so that
/// generations with different parameters (greedy evaluation beside sampled rollouts) share
/// the same engine, and its batches, at the same time.
pub struct SamplingOverride<'a, B: Backend> {
    policy: &'a EnginePolicy<B>,
    params: SamplingParams,
}

impl<B: Backend> EnginePolicy<B> {
    /// This policy sampling with `params` (the seed stays per request) instead of each model's
    /// own parameters.
    pub fn with_sampling(&self, params: SamplingParams) -> SamplingOverride<'_, B> {
        SamplingOverride {
            policy: self,
            params,
        }
    }

    fn generate_with(
        &self,
        request: PolicyRequest<'_>,
        params: Option<&SamplingParams>,
    ) -> Result<Generation> {
        let served = self.served(request.model)?;
        let prompt = self.encode(request.model, request.messages, request.response_prefix)?;
        let params = SamplingParams {
            seed: request.seed,
            ..params.unwrap_or(&served.params).clone()
        };
        let output = self
            .engine
            .submit(
                served.agent,
                request.group,
                GenerationRequest {
                    prompt: prompt.clone(),
                    params,
                },
            )
            .wait()
            .map_err(|e| SearchError::Generation(e.to_string()))?;
        let generated = served
            .tokenizer
            .decode(&output.tokens, true)
            .map_err(|e| SearchError::Generation(e.to_string()))?;
        let text = format!("{}{generated}", request.response_prefix);
        Ok(Generation {
            text,
            prompt_len: prompt.len(),
            response_len: output.tokens.len(),
            prompt_tokens: prompt,
            response_tokens: output.tokens,
            logprobs: output.logprobs,
            finish_reason: match output.finish_reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
            }
            .to_string(),
            // The engine restarts a generation whose weights change under it: every token
            // comes from the version it reports.
            weights_version: output.weights_version,
        })
    }
}

impl<B: Backend> Policy for SamplingOverride<'_, B> {
    fn models(&self) -> usize {
        self.policy.models()
    }

    fn model_name(&self, model: usize) -> String {
        self.policy.model_name(model)
    }

    fn generate(&self, request: PolicyRequest<'_>) -> Result<Generation> {
        self.policy.generate_with(request, Some(&self.params))
    }
}
