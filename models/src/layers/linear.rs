//! A projection `y = x·W + b` with `W` stored `[in, out]` (Hugging Face stores `[out, in]`;
//! loaders transpose), or kept in a GGUF block format for inference ([`Linear::quantize`]),
//! optionally with a low-rank adapter added ([`super::lora`]).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::lora::LoraAdapter;
use crate::kernels::QuantizedMatrix;
use crate::quantized::{QuantFormat, QuantizeError, QuantizedBlocks};

/// A `[out, in]` matrix from its dense `[in, out]` form or, when kept in blocks, from those.
pub fn hf_orientation<B: Backend>(
    dense_in_out: Tensor<B, 2>,
    quantized: Option<&QuantizedMatrix<B>>,
) -> Tensor<B, 2> {
    match quantized {
        Some(q) => q.dequantize(),
        None => dense_in_out.transpose(),
    }
}

#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`; `[d_in, 0]` once the weight is quantized.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The weight in a block format, `[d_out, d_in]`, when quantized: used instead of `weight`.
    #[module(skip)]
    pub quantized: Option<QuantizedMatrix<B>>,
    /// A low-rank adapter whose update is added to the product, when present.
    pub lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Linear<B> {
    pub fn new(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            quantized: None,
            lora: None,
        }
    }

    /// `x`: `[batch, tokens, d_in]` → `[batch, tokens, d_out]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let update = self.lora.as_ref().map(|lora| lora.delta(x.clone()));
        let y = match &self.quantized {
            Some(q) => crate::kernels::quantized_linear(x, q),
            None => crate::kernels::linear(x, self.weight.val()),
        };
        let y = match update {
            Some(update) => y + update,
            None => y,
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<3>(),
            None => y,
        }
    }

    /// Replaces the dense weight by its quantization in `format` (inference only: the
    /// quantized weight gets no gradient). Quantizing twice keeps the first quantization.
    pub fn quantize(&mut self, format: QuantFormat) -> Result<(), QuantizeError> {
        if self.quantized.is_some() {
            return Ok(());
        }
        let (d_in, d_out) = self.dims();
        let blocks = QuantizedBlocks::quantize(format, &self.weight_out_in(), d_out, d_in)?;
        self.set_quantized(blocks);
        Ok(())
    }

    /// The base weight as a `[d_out, d_in]` tensor (Hugging Face orientation), dequantized
    /// when it is kept in blocks; any adapter is left out.
    pub fn hf_weight(&self) -> Tensor<B, 2> {
        hf_orientation(self.weight.val(), self.quantized.as_ref())
    }

    /// The weight the projection computes with, adapter included, as a `[d_out, d_in]` tensor:
    /// what an exported checkpoint stores.
    pub fn effective_hf_weight(&self) -> Tensor<B, 2> {
        match &self.lora {
            Some(lora) => self.hf_weight() + lora.delta_weight().transpose(),
            None => self.hf_weight(),
        }
    }

    /// Folds the adapter, if any, into a dense `[d_in, d_out]` weight (a weight kept in blocks
    /// is dequantized first); the projection then computes the same without an adapter.
    pub fn merge_adapter(&mut self) {
        let Some(lora) = self.lora.take() else {
            return;
        };
        let base = match &self.quantized {
            Some(q) => q.dequantize().transpose(),
            None => self.weight.val(),
        };
        let merged = base + lora.delta_weight();
        self.quantized = None;
        self.weight = Param::from_tensor(merged);
    }

    /// The base weight as a row-major `[d_out, d_in]` matrix (Hugging Face orientation).
    pub fn weight_out_in(&self) -> Vec<f32> {
        self.hf_weight()
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("a float tensor converts to f32")
    }

    /// Computes with `blocks` (`[d_out, d_in]`, as a checkpoint stores them) instead of the
    /// dense weight from now on.
    ///
    /// # Panics
    /// If `blocks` is not `[d_out, d_in]`.
    pub fn set_quantized(&mut self, blocks: QuantizedBlocks) {
        let (d_in, d_out) = self.dims();
        assert_eq!(
            [blocks.rows, blocks.cols],
            [d_out, d_in],
            "blocks of a [d_out, d_in] weight"
        );
        let device = self.weight.device();
        self.quantized = Some(QuantizedMatrix::new(blocks, &device));
        self.weight = Param::from_tensor(Tensor::zeros([d_in, 0], &device));
    }

    /// `(d_in, d_out)`, whether or not the weight is quantized.
    pub fn dims(&self) -> (usize, usize) {
        match &self.quantized {
            Some(q) => (q.dims()[1], q.dims()[0]),
            None => {
                let [d_in, d_out] = self.weight.dims();
                (d_in, d_out)
            }
        }
    }
}
