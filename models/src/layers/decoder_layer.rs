//! One pre-norm decoder block: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::attention::SelfAttention;
use super::linear::Linear;
use super::mlp::Mlp;
use super::rms_norm::RmsNorm;
use crate::attention_context::AttentionContext;

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_norm: RmsNorm<B>,
    pub attention: SelfAttention<B>,
    pub post_attention_norm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    pub fn forward(
        &self,
        layer: usize,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        ctx: &mut dyn AttentionContext<B>,
    ) -> Tensor<B, 3> {
        let attended =
            self.attention
                .forward(layer, self.input_norm.forward(x.clone()), cos, sin, ctx);
        let h = x + attended;
        let mlp_out = self
            .mlp
            .forward(self.post_attention_norm.forward(h.clone()));
        h + mlp_out
    }

    /// The seven projections by their Hugging Face names within the layer.
    pub fn projections(&self) -> [(&'static str, &Linear<B>); 7] {
        let (a, m) = (&self.attention, &self.mlp);
        [
            ("self_attn.q_proj", &a.q_proj),
            ("self_attn.k_proj", &a.k_proj),
            ("self_attn.v_proj", &a.v_proj),
            ("self_attn.o_proj", &a.o_proj),
            ("mlp.gate_proj", &m.gate),
            ("mlp.up_proj", &m.up),
            ("mlp.down_proj", &m.down),
        ]
    }

    /// [`Self::projections`], mutable, in the same order.
    pub fn projections_mut(&mut self) -> [(&'static str, &mut Linear<B>); 7] {
        let (a, m) = (&mut self.attention, &mut self.mlp);
        [
            ("self_attn.q_proj", &mut a.q_proj),
            ("self_attn.k_proj", &mut a.k_proj),
            ("self_attn.v_proj", &mut a.v_proj),
            ("self_attn.o_proj", &mut a.o_proj),
            ("mlp.gate_proj", &mut m.gate),
            ("mlp.up_proj", &mut m.up),
            ("mlp.down_proj", &mut m.down),
        ]
    }
}
