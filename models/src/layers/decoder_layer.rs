//! One pre-norm decoder block: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::attention::SelfAttention;
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
}
