//! The boundary between a model and whoever owns its keys and values.
//!
//! A model computes queries, keys and values (RoPE applied) and hands them to an
//! [`AttentionContext`]; the context stores the new keys/values where it keeps them (nowhere,
//! a dense per-row cache, a paged block pool…) and returns the attention output. This keeps the
//! models free of batching and caching policy.
//!
//! [`FullSequence`] is the context without a cache: every call sees the whole sequence at once
//! (training, scoring, one-shot logits). [`attention_reference`] is the plain
//! softmax(QKᵀ/√d + mask)·V that every faster path is tested against.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

/// Receives each layer's queries `[batch, heads, tokens, head_dim]` and new keys/values
/// `[batch, kv_heads, tokens, head_dim]`; returns `[batch, heads, tokens, head_dim]`.
pub trait AttentionContext<B: Backend> {
    fn attend(
        &mut self,
        layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4>;
}

/// Repeats each key/value head `group` times along the head axis (grouped-query attention).
pub fn repeat_kv<B: Backend>(x: Tensor<B, 4>, group: usize) -> Tensor<B, 4> {
    if group == 1 {
        return x;
    }
    let [b, h, s, d] = x.dims();
    x.unsqueeze_dim::<5>(2)
        .expand([b, h, group, s, d])
        .reshape([b, h * group, s, d])
}

/// Causal visibility from positions: query `t` of row `b` sees key `s` iff
/// `key_positions[b, s] <= query_positions[b, t]`. Returns a mask that is `true` where a key
/// must be hidden, shaped `[batch, 1, tokens, keys]`.
pub fn causal_mask_from_positions<B: Backend>(
    query_positions: Tensor<B, 2, Int>,
    key_positions: Tensor<B, 2, Int>,
) -> Tensor<B, 4, Bool> {
    let [b, t] = query_positions.dims();
    let [_, s] = key_positions.dims();
    let q = query_positions.reshape([b, 1, t, 1]).expand([b, 1, t, s]);
    let k = key_positions.reshape([b, 1, 1, s]).expand([b, 1, t, s]);
    k.greater(q)
}

/// softmax(q·kᵀ·scale, hiding masked keys)·v with grouped-query heads; `mask` is `true` where
/// hidden and broadcasts over heads. Every row must see at least one key.
pub fn attention_reference<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
) -> Tensor<B, 4> {
    let [b, h, t, d] = q.dims();
    let kv_heads = k.dims()[1];
    let group = h / kv_heads;
    let k = repeat_kv(k, group);
    let v = repeat_kv(v, group);
    let s = k.dims()[2];
    let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
    let scores = scores.mask_fill(mask.expand([b, h, t, s]), f32::NEG_INFINITY);
    softmax(scores, 3).matmul(v)
}

/// The same attention as [`attention_reference`] without copying key/value heads: the `group`
/// query heads that share a key/value head are stacked as extra query rows, so each key/value
/// head is multiplied once. This is the path the models run; the reference is its oracle.
pub fn attention_grouped<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
) -> Tensor<B, 4> {
    let [b, h, t, d] = q.dims();
    let [_, kv_heads, s, _] = k.dims();
    let group = h / kv_heads;
    if group == 1 {
        return attention_reference(q, k, v, mask);
    }
    // Head h = kv·group + j, so [b, h, t, d] regroups as [b, kv, group·t, d] (rows j·t + t').
    let q = q.reshape([b, kv_heads, group * t, d]);
    let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
    let mask = mask
        .unsqueeze_dim::<5>(2)
        .expand([b, 1, group, t, s])
        .reshape([b, 1, group * t, s])
        .expand([b, kv_heads, group * t, s]);
    let scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    softmax(scores, 3).matmul(v).reshape([b, h, t, d])
}

/// No cache: each call attends over exactly the tokens passed in, causally by position.
pub struct FullSequence<B: Backend> {
    mask: Tensor<B, 4, Bool>,
}

impl<B: Backend> FullSequence<B> {
    /// `positions` `[batch, tokens]`: the positions of the tokens of the coming forward pass.
    pub fn new(positions: Tensor<B, 2, Int>) -> Self {
        Self {
            mask: causal_mask_from_positions(positions.clone(), positions),
        }
    }
}

impl<B: Backend> AttentionContext<B> for FullSequence<B> {
    fn attend(
        &mut self,
        _layer: usize,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        attention_grouped(q, k, v, self.mask.clone())
    }
}
