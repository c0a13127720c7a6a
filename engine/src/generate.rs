//! Batched generation with a dense KV cache: one prefill of all prompts (right-padded, each row
//! at its own positions), then one decode step per token for the whole batch. Rows stop
//! independently (stop ids or their own token budget); each sampled token carries its
//! log-probability.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use mars2_models::{FullSequence, ModelConfig, Transformer};

use crate::dense_cache::DenseKvCache;
use crate::device_sampling::{sample_on_device, RowDraw};
use crate::error::{EngineError, Result};
use crate::sampling::{Sampler, SamplingParams};

/// One prompt and how to continue it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop token was generated (it is the last token of the output).
    Stop,
    /// `max_new_tokens` were generated.
    Length,
}

/// The continuation of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationOutput {
    pub tokens: Vec<u32>,
    /// Log-probability of each token under the distribution it was sampled from.
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    /// The weights version every token was generated with (0 for a model never updated).
    #[serde(default)]
    pub weights_version: u64,
}

fn int_tensor<B: Backend>(
    values: Vec<i64>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub(crate) fn check_prompt(
    index: usize,
    prompt: &[u32],
    config: &ModelConfig,
    extra: usize,
) -> Result<()> {
    if prompt.is_empty() {
        return Err(EngineError::EmptyPrompt { index });
    }
    if let Some(&id) = prompt.iter().find(|&&id| id as usize >= config.vocab_size) {
        return Err(EngineError::TokenOutOfRange {
            index,
            id,
            vocab: config.vocab_size,
        });
    }
    let needed = prompt.len() + extra;
    if needed > config.max_position_embeddings {
        return Err(EngineError::TooLong {
            index,
            needed,
            max: config.max_position_embeddings,
        });
    }
    Ok(())
}

/// Generates a continuation for every request, all in one batch.
pub fn generate<B: Backend>(
    model: &Transformer<B>,
    config: &ModelConfig,
    requests: &[GenerationRequest],
    device: &B::Device,
) -> Result<Vec<GenerationOutput>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    for (i, r) in requests.iter().enumerate() {
        r.params.validate()?;
        check_prompt(i, &r.prompt, config, r.params.max_new_tokens)?;
    }
    let batch = requests.len();
    let max_prompt = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let capacity = requests
        .iter()
        .map(|r| r.prompt.len() + r.params.max_new_tokens)
        .max()
        .unwrap_or(0)
        .max(max_prompt);
    let stops: Vec<Vec<u32>> = requests
        .iter()
        .map(|r| {
            let mut s = r.params.stop_token_ids.clone();
            if !r.params.ignore_eos {
                s.extend(&config.eos_token_ids);
            }
            s
        })
        .collect();
    let mut samplers: Vec<Sampler> = requests
        .iter()
        .map(|r| Sampler::new(r.params.clone()))
        .collect();
    let mut outputs: Vec<GenerationOutput> = requests
        .iter()
        .map(|_| GenerationOutput {
            weights_version: 0,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish_reason: FinishReason::Length,
        })
        .collect();
    let mut done: Vec<bool> = requests
        .iter()
        .map(|r| r.params.max_new_tokens == 0)
        .collect();
    let lengths: Vec<usize> = requests.iter().map(|r| r.prompt.len()).collect();
    let mut cache = DenseKvCache::<B>::new(config.num_layers, batch, capacity, device);

    // Prefill: right-padded prompts, positions 0..max_prompt in every row.
    let mut ids = Vec::with_capacity(batch * max_prompt);
    for r in requests {
        ids.extend(r.prompt.iter().map(|&t| i64::from(t)));
        ids.extend(std::iter::repeat_n(0, max_prompt - r.prompt.len()));
    }
    let positions: Vec<i64> = (0..batch).flat_map(|_| 0..max_prompt as i64).collect();
    cache.begin_step(&vec![0; batch], max_prompt);
    let hidden = model.forward_hidden(
        int_tensor(ids, [batch, max_prompt], device),
        int_tensor(positions, [batch, max_prompt], device),
        &mut cache,
    );
    let d = hidden.dims()[2];
    let last: Vec<Tensor<B, 3>> = lengths
        .iter()
        .enumerate()
        .map(|(row, &len)| hidden.clone().slice([row..row + 1, len - 1..len, 0..d]))
        .collect();
    let mut logits = model.lm_head(Tensor::cat(last, 0));

    loop {
        let vocab = logits.dims()[2];
        let active: Vec<usize> = (0..batch).filter(|&r| !done[r]).collect();
        let draws: Vec<RowDraw> = active
            .iter()
            .map(|&r| RowDraw::from_sampler(&mut samplers[r]))
            .collect();
        let rows: Vec<Tensor<B, 3>> = active
            .iter()
            .map(|&r| logits.clone().slice([r..r + 1, 0..1, 0..vocab]))
            .collect();
        let sampled = sample_on_device(
            Tensor::cat(rows, 0).reshape([active.len(), vocab]),
            &draws,
            device,
        );
        for (&row, tok) in active.iter().zip(sampled) {
            let out = &mut outputs[row];
            out.tokens.push(tok.id);
            out.logprobs.push(tok.logprob);
            if stops[row].contains(&tok.id) {
                out.finish_reason = FinishReason::Stop;
                done[row] = true;
            } else if out.tokens.len() >= requests[row].params.max_new_tokens {
                done[row] = true;
            }
        }
        let next: Vec<u32> = (0..batch)
            .map(|row| {
                outputs[row]
                    .tokens
                    .last()
                    .copied()
                    .unwrap_or(*requests[row].prompt.last().unwrap_or(&0))
            })
            .collect();
        if done.iter().all(|&d| d) {
            break;
        }
        // Finished rows rewrite their last slot with the same token: harmless and shape-stable.
        // The newest token of row r sits at position prompt_len + generated - 1.
        let starts: Vec<usize> = (0..batch)
            .map(|row| lengths[row] + outputs[row].tokens.len().max(1) - 1)
            .collect();
        cache.begin_step(&starts, 1);
        let ids: Vec<i64> = next.iter().map(|&t| i64::from(t)).collect();
        let pos: Vec<i64> = starts.iter().map(|&s| s as i64).collect();
        logits = model.forward(
            int_tensor(ids, [batch, 1], device),
            int_tensor(pos, [batch, 1], device),
            &mut cache,
        );
    }
    Ok(outputs)
}

/// Hidden states of one whole sequence, `[1, tokens, hidden]`, in one pass without a cache.
fn sequence_hidden<B: Backend>(
    model: &Transformer<B>,
    config: &ModelConfig,
    ids: &[u32],
    device: &B::Device,
) -> Result<Tensor<B, 3>> {
    check_prompt(0, ids, config, 0)?;
    let t = ids.len();
    let positions = int_tensor((0..t as i64).collect(), [1, t], device);
    let mut ctx = FullSequence::new(positions.clone());
    Ok(model.forward_hidden(
        int_tensor(ids.iter().map(|&i| i64::from(i)).collect(), [1, t], device),
        positions,
        &mut ctx,
    ))
}

fn to_host<B: Backend>(logits: Tensor<B, 3>) -> Vec<f32> {
    logits
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("logits convert to f32")
}

/// Logits at every position of one sequence, `[tokens × vocab]` row-major, computed in one
/// forward pass without a cache.
pub fn prompt_logits<B: Backend>(
    model: &Transformer<B>,
    config: &ModelConfig,
    ids: &[u32],
    device: &B::Device,
) -> Result<Vec<f32>> {
    let hidden = sequence_hidden(model, config, ids, device)?;
    Ok(to_host(model.lm_head(hidden)))
}

/// Logits at the last position of one sequence, `[vocab]`, without computing the LM head for
/// the other positions.
pub fn last_position_logits<B: Backend>(
    model: &Transformer<B>,
    config: &ModelConfig,
    ids: &[u32],
    device: &B::Device,
) -> Result<Vec<f32>> {
    let hidden = sequence_hidden(model, config, ids, device)?;
    let [_, t, d] = hidden.dims();
    Ok(to_host(model.lm_head(hidden.slice([0..1, t - 1..t, 0..d]))))
}
