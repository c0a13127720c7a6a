//! Log-probabilities of a response under a model, computed as gather − logsumexp over the
//! response positions only (the prompt's logits are never formed), differentiable when the
//! backend is.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use mars2_models::attention_context::FullSequence;
use mars2_models::Transformer;

/// `log π(response_t | prompt, response_<t)` for every response token, `[R]`.
///
/// # Panics
/// If `prompt` or `response` is empty.
pub fn response_logprobs<B: Backend>(
    model: &Transformer<B>,
    prompt: &[u32],
    response: &[u32],
    device: &B::Device,
) -> Tensor<B, 1> {
    response_logprobs_at(model, prompt, response, 1.0, device)
}

/// [`response_logprobs`] under the temperature-scaled distribution `softmax(logits / T)`.
///
/// # Panics
/// If `prompt` or `response` is empty, or `temperature` is not positive.
pub fn response_logprobs_at<B: Backend>(
    model: &Transformer<B>,
    prompt: &[u32],
    response: &[u32],
    temperature: f64,
    device: &B::Device,
) -> Tensor<B, 1> {
    assert!(temperature > 0.0, "temperature must be positive");
    assert!(
        !prompt.is_empty() && !response.is_empty(),
        "empty prompt or response"
    );
    let ids: Vec<i64> = prompt.iter().chain(response).map(|&t| t as i64).collect();
    let len = ids.len();
    let (p, r) = (prompt.len(), response.len());
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, len]), device);
    let positions = Tensor::<B, 2, Int>::from_data(
        TensorData::new((0..len as i64).collect::<Vec<_>>(), [1, len]),
        device,
    );
    let mut ctx = FullSequence::new(positions.clone());
    let hidden = model.forward_hidden(ids, positions, &mut ctx);
    // The hidden state at position i predicts token i + 1.
    let hidden = hidden.slice([0..1, p - 1..len - 1]);
    let logits = model.lm_head(hidden).reshape([r as i32, -1]);
    let logits = if temperature == 1.0 {
        logits
    } else {
        logits / temperature
    };
    token_logprobs(logits, response, device)
}

/// Log-probs of `targets` under each row of `logits` (`[R, V]`), by gather − logsumexp.
pub fn token_logprobs<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[u32],
    device: &B::Device,
) -> Tensor<B, 1> {
    let r = targets.len();
    let max = logits.clone().max_dim(1).detach();
    let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
    let index = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            targets.iter().map(|&t| t as i64).collect::<Vec<_>>(),
            [r, 1],
        ),
        device,
    );
    (logits.gather(1, index) - lse).reshape([r])
}
