//! The single-threaded heart of the engine: several agents, each with its own model and paged
//! KV storage, one shared KV budget, and a queue of requests per agent.
//!
//! Every [`EngineCore::step`] does, for each agent with work:
//! 1. **admit** waiting requests while the agent runs fewer than `max_running` sequences,
//!    picking first from the group (e.g. search tree) with the fewest running sequences, so one
//!    large tree cannot starve the others; each admitted prompt starts from its longest cached
//!    prefix;
//! 2. **prefill** admitted rows by chunks of at most `prefill_chunk` tokens (ragged rows, one
//!    forward pass), sampling the first token of rows whose prompt is done;
//! 3. **decode** one token for every other running row (one forward pass).
//!
//! The forward passes and the sampling run in [`crate::model_runner`]; this module owns the
//! queues, the sequences' KV blocks and the requests' state.
//!
//! When blocks run out, the most recently admitted sequence is **preempted**: its blocks are
//! released and it goes back to the front of the queue with its generated tokens, to be
//! recomputed later (mostly from the prefix cache). Its sampler keeps its random state, so a
//! preempted request returns exactly what it would have returned without preemption.

use std::collections::{HashMap, VecDeque};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use mars2_models::kernels::{with_host_activations, HostActivations};
use mars2_models::{ModelConfig, TextTokenizer, Transformer};

use crate::device_sampling::RowDraw;
use crate::error::{EngineError, Result};
use crate::generate::{FinishReason, GenerationOutput, GenerationRequest};
use crate::kv::{AgentId, BlockId, KvManager, KvSequence};
use crate::model_runner::{self, PassRow, PassTarget};
use crate::paged::AgentKvStorage;
use crate::sampling::Sampler;

pub use crate::model_runner::StepProfile;

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// KV memory for all agents together, in bytes.
    pub kv_cache_bytes: usize,
    /// Tokens per KV block.
    pub block_size: usize,
    /// Sequences decoded together per agent.
    pub max_running: usize,
    /// Most prompt tokens one row prefills per step.
    pub prefill_chunk: usize,
    /// Reuse cached blocks of earlier sequences with the same prefix.
    pub prefix_reuse: bool,
    /// Time each forward pass by stage ([`EngineStats::profile`]), waiting for the device
    /// after each stage: a diagnostic mode, slower than normal running.
    #[serde(default)]
    pub profile: bool,
    /// The host kernel for weights kept in blocks on the CPU, for this engine's passes;
    /// `None`: the process-wide choice ([`mars2_models::kernels::host_activations`]).
    #[serde(default)]
    pub activations: Option<HostActivations>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kv_cache_bytes: 512 << 20,
            block_size: 16,
            max_running: 32,
            prefill_chunk: 512,
            prefix_reuse: true,
            profile: false,
            activations: None,
        }
    }
}

/// Counters since the engine started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Prompt tokens run through the model (cache misses).
    pub prefilled_tokens: usize,
    /// Prompt tokens whose keys/values came from the prefix cache.
    pub reused_tokens: usize,
    pub decoded_tokens: usize,
    pub preemptions: usize,
    pub forward_passes: usize,
    /// Largest KV memory in use at any time, bytes.
    pub peak_kv_bytes: usize,
    /// Requests started over because their agent's weights changed under them.
    pub restarted_for_new_weights: usize,
    /// Where forward passes spent their time (only with [`EngineConfig::profile`]).
    pub profile: StepProfile,
}

/// Identifies a submitted request.
pub type RequestId = u64;

struct Agent<B: Backend> {
    name: String,
    model: Transformer<B>,
    config: ModelConfig,
    tokenizer: Option<TextTokenizer>,
    storage: AgentKvStorage<B>,
    kv_id: AgentId,
    scratch_block: BlockId,
    waiting: VecDeque<RequestId>,
    running: Vec<RequestId>,
}

enum Phase {
    Waiting,
    /// Prefilling `context`; `context[seq.len()..]` remains.
    Prefill {
        context: Vec<u32>,
    },
    /// The last output token still has to be fed to the model.
    Decode,
}

struct Active {
    agent: usize,
    group: u64,
    request: GenerationRequest,
    sampler: Sampler,
    stops: Vec<u32>,
    output: GenerationOutput,
    seq: Option<KvSequence>,
    phase: Phase,
    admitted_at: u64,
}

/// One row of a forward pass: which request and which tokens it feeds.
struct Row {
    id: RequestId,
    tokens: Vec<u32>,
    sample: bool,
}

pub struct EngineCore<B: Backend> {
    device: B::Device,
    config: EngineConfig,
    kv: KvManager,
    agents: Vec<Agent<B>>,
    active: HashMap<RequestId, Active>,
    next_id: RequestId,
    clock: u64,
    stats: EngineStats,
    finished: Vec<(RequestId, Result<GenerationOutput>)>,
}

impl<B: Backend> EngineCore<B> {
    pub fn new(config: EngineConfig, device: B::Device) -> Self {
        let mut kv = KvManager::new(config.kv_cache_bytes, config.block_size);
        kv.prefix_reuse = config.prefix_reuse;
        Self {
            device,
            config,
            kv,
            agents: Vec::new(),
            active: HashMap::new(),
            next_id: 0,
            clock: 0,
            stats: EngineStats::default(),
            finished: Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }

    pub fn kv(&self) -> &KvManager {
        &self.kv
    }

    /// Hosts a model; its keys and values share the engine's KV budget.
    pub fn add_agent(
        &mut self,
        name: &str,
        model: Transformer<B>,
        config: ModelConfig,
        tokenizer: Option<TextTokenizer>,
    ) -> Result<AgentId> {
        let bytes_per_token = crate::paged::kv_bytes_per_token::<B>(
            config.num_layers,
            config.num_kv_heads,
            config.head_dim,
        );
        let kv_id = self.kv.add_agent(bytes_per_token);
        // One permanent block per agent takes the writes of padding tokens.
        // It is never released: the sequence holding it is simply not kept.
        let mut scratch = self.kv.start(kv_id, &[]);
        self.kv
            .reserve(&mut scratch, 1)
            .map_err(|_| EngineError::KvCacheTooSmall {
                agent: name.to_string(),
            })?;
        let scratch_block = scratch.blocks[0];
        let storage = AgentKvStorage::new(
            config.num_layers,
            config.num_kv_heads,
            config.head_dim,
            self.config.block_size,
            &self.device,
        );
        self.agents.push(Agent {
            name: name.to_string(),
            model,
            config,
            tokenizer,
            storage,
            kv_id,
            scratch_block,
            waiting: VecDeque::new(),
            running: Vec::new(),
        });
        Ok(AgentId(self.agents.len() - 1))
    }

    pub fn agent_name(&self, agent: AgentId) -> Option<&str> {
        self.agents.get(agent.0).map(|a| a.name.as_str())
    }

    pub fn agent_config(&self, agent: AgentId) -> Option<&ModelConfig> {
        self.agents.get(agent.0).map(|a| &a.config)
    }

    /// Swaps in new weights; cached prefixes computed with the old ones become unreachable.
    /// Requests of this agent already under way start over with the new weights (their
    /// tokens so far are dropped and their sampler starts again from its seed), so every token
    /// of an output comes from one weights version, the one it reports.
    pub fn update_weights(&mut self, agent: AgentId, model: Transformer<B>) -> Result<u64> {
        self.update_weights_as(agent, model, 0)
    }

    /// As [`EngineCore::update_weights`], numbering the new weights `version` when it is newer
    /// than the current version (else one past it); returns the version in force.
    pub fn update_weights_as(
        &mut self,
        agent: AgentId,
        model: Transformer<B>,
        version: u64,
    ) -> Result<u64> {
        let a = self
            .agents
            .get_mut(agent.0)
            .ok_or(EngineError::UnknownAgent(agent.0))?;
        a.model = model;
        let kv_id = a.kv_id;
        let running = std::mem::take(&mut a.running);
        for id in running.into_iter().rev() {
            let a = self.active.get_mut(&id).expect("running request is active");
            if let Some(seq) = a.seq.take() {
                self.kv.release(seq);
            }
            a.phase = Phase::Waiting;
            self.agents[agent.0].waiting.push_front(id);
        }
        let mut restarted = 0;
        for id in self.agents[agent.0].waiting.clone() {
            let a = self.active.get_mut(&id).expect("queued request is active");
            if !a.output.tokens.is_empty() {
                a.output.tokens.clear();
                a.output.logprobs.clear();
                a.sampler = Sampler::new(a.request.params.clone());
                restarted += 1;
            }
        }
        self.stats.restarted_for_new_weights += restarted;
        Ok(self.kv.bump_version_to(kv_id, version))
    }

    /// Queues a request; `group` ties requests of one search tree together for fairness.
    pub fn submit(
        &mut self,
        agent: AgentId,
        group: u64,
        request: GenerationRequest,
    ) -> Result<RequestId> {
        let a = self
            .agents
            .get(agent.0)
            .ok_or(EngineError::UnknownAgent(agent.0))?;
        request.params.validate()?;
        crate::generate::check_prompt(
            0,
            &request.prompt,
            &a.config,
            request.params.max_new_tokens,
        )?;
        let mut stops = request.params.stop_token_ids.clone();
        if !request.params.ignore_eos {
            stops.extend(&a.config.eos_token_ids);
        }
        let id = self.next_id;
        self.next_id += 1;
        let finished_now = request.params.max_new_tokens == 0;
        self.active.insert(
            id,
            Active {
                agent: agent.0,
                group,
                sampler: Sampler::new(request.params.clone()),
                request,
                stops,
                output: GenerationOutput {
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    finish_reason: FinishReason::Length,
                    weights_version: self.kv.version(a.kv_id),
                },
                seq: None,
                phase: Phase::Waiting,
                admitted_at: 0,
            },
        );
        if finished_now {
            self.finish(id);
        } else {
            self.agents[agent.0].waiting.push_back(id);
        }
        Ok(id)
    }

    pub fn has_work(&self) -> bool {
        self.agents
            .iter()
            .any(|a| !a.waiting.is_empty() || !a.running.is_empty())
    }

    /// Results finished since the last call.
    pub fn take_finished(&mut self) -> Vec<(RequestId, Result<GenerationOutput>)> {
        std::mem::take(&mut self.finished)
    }

    /// One scheduling round over all agents.
    pub fn step(&mut self) {
        match self.config.activations {
            Some(activations) => with_host_activations(activations, || self.step_agents()),
            None => self.step_agents(),
        }
    }

    fn step_agents(&mut self) {
        for agent in 0..self.agents.len() {
            if self.agents[agent].waiting.is_empty() && self.agents[agent].running.is_empty() {
                continue;
            }
            self.admit(agent);
            self.run_phase(agent, true);
            self.run_phase(agent, false);
        }
        self.stats.peak_kv_bytes = self.stats.peak_kv_bytes.max(self.kv.pool().used_bytes());
    }

    /// Runs until every queued request has finished; returns their results by id.
    pub fn run_until_idle(&mut self) -> HashMap<RequestId, Result<GenerationOutput>> {
        let mut results = HashMap::new();
        while self.has_work() {
            self.step();
            results.extend(self.take_finished());
        }
        results.extend(self.take_finished());
        results
    }

    fn admit(&mut self, agent: usize) {
        while self.agents[agent].running.len() < self.config.max_running
            && !self.agents[agent].waiting.is_empty()
        {
            let pick = self.pick_fairly(agent);
            let id = self.agents[agent]
                .waiting
                .remove(pick)
                .expect("index in range");
            let a = self.active.get_mut(&id).expect("queued request is active");
            let mut context = a.request.prompt.clone();
            context.extend(&a.output.tokens);
            let seq = self.kv.start(self.agents[agent].kv_id, &context);
            self.stats.reused_tokens += seq.len();
            self.clock += 1;
            a.seq = Some(seq);
            a.phase = Phase::Prefill { context };
            a.admitted_at = self.clock;
            self.agents[agent].running.push(id);
        }
    }

    /// Index in the waiting queue of the oldest request of the least-served group.
    fn pick_fairly(&self, agent: usize) -> usize {
        let a = &self.agents[agent];
        let mut running_per_group: HashMap<u64, usize> = HashMap::new();
        for id in &a.running {
            *running_per_group.entry(self.active[id].group).or_default() += 1;
        }
        let mut best = (usize::MAX, 0);
        for (i, id) in a.waiting.iter().enumerate() {
            let load = running_per_group
                .get(&self.active[id].group)
                .copied()
                .unwrap_or(0);
            if load < best.0 {
                best = (load, i);
                if load == 0 {
                    break;
                }
            }
        }
        best.1
    }

    /// Reserves room for `n` tokens of `id`, preempting younger sequences of the same agent if
    /// needed. Returns false if `id` itself had to wait (it was preempted).
    fn reserve(&mut self, agent: usize, id: RequestId, n: usize) -> bool {
        loop {
            let a = self.active.get_mut(&id).expect("running request");
            let seq = a.seq.as_mut().expect("running request has a sequence");
            match self.kv.reserve(seq, n) {
                Ok(copies) => {
                    let blocks = self.kv.pool().high_water(self.agents[agent].kv_id);
                    let storage = &mut self.agents[agent].storage;
                    storage.ensure_blocks(blocks);
                    storage.copy_blocks(&copies);
                    return true;
                }
                Err(_) => {
                    let victim = self.agents[agent]
                        .running
                        .iter()
                        .copied()
                        .max_by_key(|r| self.active[r].admitted_at)
                        .expect("the requester itself is running");
                    let only_one = self.agents[agent].running.len() == 1;
                    if only_one {
                        let needed = self.active[&id].request.prompt.len()
                            + self.active[&id].request.params.max_new_tokens;
                        self.fail(
                            id,
                            EngineError::KvCacheTooSmall {
                                agent: format!(
                                    "{} (a single sequence of {needed} tokens does not fit)",
                                    self.agents[agent].name
                                ),
                            },
                        );
                        return false;
                    }
                    self.preempt(agent, victim);
                    if victim == id {
                        return false;
                    }
                }
            }
        }
    }

    fn preempt(&mut self, agent: usize, id: RequestId) {
        let a = self.active.get_mut(&id).expect("running request");
        if let Some(seq) = a.seq.take() {
            self.kv.release(seq);
        }
        a.phase = Phase::Waiting;
        self.agents[agent].running.retain(|r| *r != id);
        self.agents[agent].waiting.push_front(id);
        self.stats.preemptions += 1;
    }

    fn fail(&mut self, id: RequestId, error: EngineError) {
        self.retire(id);
        self.finished.push((id, Err(error)));
    }

    fn finish(&mut self, id: RequestId) {
        if let Some(mut a) = self.retire(id) {
            a.output.weights_version = self.kv.version(self.agents[a.agent].kv_id);
            self.finished.push((id, Ok(a.output)));
        }
    }

    /// Removes a request from the engine, giving its blocks back.
    fn retire(&mut self, id: RequestId) -> Option<Active> {
        let mut a = self.active.remove(&id)?;
        if let Some(seq) = a.seq.take() {
            self.kv.release(seq);
        }
        self.agents[a.agent].running.retain(|r| *r != id);
        Some(a)
    }

    /// One forward pass for the agent's running rows in one phase: prompt chunks (`prefill`)
    /// or the next token of each decoding row.
    fn run_phase(&mut self, agent: usize, prefill: bool) {
        let in_phase = |a: &Active| match a.phase {
            Phase::Prefill { .. } => prefill,
            Phase::Decode => !prefill,
            Phase::Waiting => false,
        };
        let ids: Vec<RequestId> = self.agents[agent]
            .running
            .iter()
            .copied()
            .filter(|id| in_phase(&self.active[id]))
            .collect();
        let mut rows = Vec::new();
        for id in ids {
            // An earlier row's reservation may have preempted or failed this one.
            let Some(a) = self.active.get(&id).filter(|a| in_phase(a)) else {
                continue;
            };
            let (tokens, sample) = match &a.phase {
                Phase::Prefill { context } => {
                    let done = a.seq.as_ref().map_or(0, KvSequence::len);
                    let n = (context.len() - done).min(self.config.prefill_chunk);
                    (context[done..done + n].to_vec(), done + n == context.len())
                }
                _ => {
                    let last = *a
                        .output
                        .tokens
                        .last()
                        .expect("decoding after a first token");
                    (vec![last], true)
                }
            };
            if self.reserve(agent, id, tokens.len()) {
                rows.push(Row { id, tokens, sample });
            }
        }
        // Rows may have been preempted after being listed, by a later row's reservation.
        rows.retain(|r| self.active.get(&r.id).is_some_and(in_phase));
        if rows.is_empty() {
            return;
        }
        if prefill {
            self.stats.prefilled_tokens += rows.iter().map(|r| r.tokens.len()).sum::<usize>();
        } else {
            self.stats.decoded_tokens += rows.len();
        }
        self.forward(agent, rows);
    }

    /// One ragged forward pass over `rows` ([`model_runner::run_pass`]), then the sampled
    /// tokens handed to their requests.
    fn forward(&mut self, agent: usize, rows: Vec<Row>) {
        let pass_rows: Vec<PassRow> = rows
            .iter()
            .map(|row| {
                let a = self.active.get_mut(&row.id).expect("running");
                let seq = a.seq.as_ref().expect("running");
                let slots = (0..seq.len() + row.tokens.len())
                    .map(|p| self.kv.slot(seq, p))
                    .collect();
                PassRow {
                    tokens: row.tokens.clone(),
                    slots,
                    draw: row.sample.then(|| RowDraw::from_sampler(&mut a.sampler)),
                }
            })
            .collect();
        let a = &mut self.agents[agent];
        let target = PassTarget {
            model: &a.model,
            storage: &mut a.storage,
            scratch_slot: a.scratch_block as usize * self.config.block_size,
            block_size: self.config.block_size,
            device: &self.device,
        };
        let profile = self.config.profile.then_some(&mut self.stats.profile);
        let sampled = model_runner::run_pass(target, &pass_rows, profile);
        self.stats.forward_passes += 1;
        for row in &rows {
            let a = self.active.get_mut(&row.id).expect("running");
            let seq = a.seq.as_mut().expect("running");
            self.kv.commit(seq, &row.tokens);
        }
        for (row, tok) in rows.iter().zip(sampled) {
            let Some(tok) = tok else { continue };
            let id = row.id;
            let a = self.active.get_mut(&id).expect("running");
            a.output.tokens.push(tok.id);
            a.output.logprobs.push(tok.logprob);
            a.phase = Phase::Decode;
            let stop = a.stops.contains(&tok.id) || self.hits_stop_string(agent, id);
            let a = self.active.get_mut(&id).expect("running");
            if stop {
                a.output.finish_reason = FinishReason::Stop;
                self.finish(id);
            } else if a.output.tokens.len() >= a.request.params.max_new_tokens {
                self.finish(id);
            }
        }
    }

    fn hits_stop_string(&self, agent: usize, id: RequestId) -> bool {
        let a = &self.active[&id];
        let stops = &a.request.params.stop_strings;
        if stops.is_empty() {
            return false;
        }
        let Some(tokenizer) = &self.agents[agent].tokenizer else {
            return false;
        };
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        // Each token is at least one byte of text, so the tail holds any fresh match.
        let tail_len = (longest + 8).min(a.output.tokens.len());
        let tail = &a.output.tokens[a.output.tokens.len() - tail_len..];
        tokenizer
            .decode(tail, false)
            .map(|text| stops.iter().any(|s| text.contains(s.as_str())))
            .unwrap_or(false)
    }
}
