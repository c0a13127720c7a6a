//! Self-attention projections: q/k/v (optional bias, optional per-head q/k RMSNorm), RoPE, then
//! the attention itself is delegated to an [`AttentionContext`], which owns the KV cache.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::linear::Linear;
use super::rms_norm::RmsNorm;
use super::rope::Rope;
use crate::attention_context::AttentionContext;

#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    /// Qwen3's per-head norms, over `head_dim`.
    pub q_norm: Option<RmsNorm<B>>,
    pub k_norm: Option<RmsNorm<B>>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> SelfAttention<B> {
    /// `x`: `[batch, tokens, hidden]`; `cos`/`sin` from [`Rope::tables`].
    pub fn forward(
        &self,
        layer: usize,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        ctx: &mut dyn AttentionContext<B>,
    ) -> Tensor<B, 3> {
        let [batch, tokens, _] = x.dims();
        let heads = |t: Tensor<B, 3>, n: usize, norm: &Option<RmsNorm<B>>| {
            let t = t.reshape([batch, tokens, n, self.head_dim]);
            let t = match norm {
                Some(norm) => norm.forward(t),
                None => t,
            };
            t.swap_dims(1, 2)
        };
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads, &self.q_norm);
        let k = heads(
            self.k_proj.forward(x.clone()),
            self.num_kv_heads,
            &self.k_norm,
        );
        let v = heads(self.v_proj.forward(x), self.num_kv_heads, &None);
        let q = Rope::apply(q, cos, sin);
        let k = Rope::apply(k, cos, sin);
        let out = ctx.attend(layer, q, k, v);
        let out = out
            .swap_dims(1, 2)
            .reshape([batch, tokens, self.num_heads * self.head_dim]);
        self.o_proj.forward(out)
    }
}
