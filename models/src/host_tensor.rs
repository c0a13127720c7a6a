//! `HostTensor`: a named weight in host memory as f32, the common currency between file loaders
//! and the transformer builder; the two lookups a checkpoint serves: its weights as f32
//! ([`WeightSource`]) and the weights it stores in a block format ([`BlockSource`]).

use crate::quantized::{QuantFormat, QuantizedBlocks};

/// A dense row-major f32 array with its shape (PyTorch order: `[out, in]` for linear weights).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Transposes a 2-D tensor (`[r, c]` → `[c, r]`).
    pub fn transposed(&self) -> HostTensor {
        assert_eq!(self.shape.len(), 2, "transposed needs a 2-D tensor");
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0f32; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = self.data[r * cols + c];
            }
        }
        HostTensor::new(vec![cols, rows], out)
    }
}

/// Where a loader gets its weights from: a lookup by Hugging Face tensor name.
pub trait WeightSource {
    /// The file the weights come from, for error messages.
    fn path(&self) -> &std::path::Path;
    /// Loads one tensor as f32, or `Ok(None)` if the checkpoint has no tensor of that name.
    fn load(&mut self, name: &str) -> crate::Result<Option<HostTensor>>;
}

/// Where quantization finds the weights a checkpoint stores in a GGUF block format, by Hugging
/// Face tensor name ([`crate::Transformer::quantize_with`]).
pub trait BlockSource {
    /// The file the blocks come from, for error messages.
    fn path(&self) -> &std::path::Path;
    /// The stored blocks of a matrix in Hugging Face orientation (`[out, in]`), or `Ok(None)`
    /// where the checkpoint stores that tensor otherwise (or not at all), or, when `format` is
    /// given, in another block format (then the blocks are not even read).
    fn blocks(
        &mut self,
        name: &str,
        format: Option<QuantFormat>,
    ) -> crate::Result<Option<QuantizedBlocks>>;
}
